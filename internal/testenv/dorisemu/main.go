// Command dorisemu runs the Doris emulator in the foreground until SIGINT
// or SIGTERM, for trying a sink or curl against it by hand:
//
//	go run ./internal/testenv/dorisemu --listen 127.0.0.1:8030
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicedb/sluice/internal/testenv/dorisemu/emu"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8030", "FE HTTP address")
	beListen := flag.String("be-listen", "127.0.0.1:0", "BE HTTP address (stream loads are redirected here)")
	user := flag.String("user", "root", "user name")
	password := flag.String("password", "", "password of --user")
	flag.Parse()

	opts := emu.Options{FEAddr: *listen, BEAddr: *beListen}
	if *user != "root" || *password != "" {
		opts.Users = map[string]emu.User{*user: {Password: *password, Privs: []string{emu.PrivAdmin}}}
	}
	// Signals are caught before starting, so one arriving mid-start still
	// ends with MariaDB stopped and its directory removed.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	e, err := emu.Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dorisemu:", err)
		os.Exit(1)
	}
	fmt.Printf("dorisemu: FE %s BE http://%s\n", e.FEURL(), e.BEAddr())
	<-sig
	e.Close()
	fmt.Println("dorisemu: stopped")
}
