package emu

import "fmt"

// Error is a failure in Doris's shape. Error() gives the text a Doris FE
// puts in its answers: "errCode = 2, detailMessage = <Detail>".
type Error struct {
	Detail string
}

func (e *Error) Error() string { return "errCode = 2, detailMessage = " + e.Detail }

func errorf(format string, args ...any) error {
	return &Error{Detail: fmt.Sprintf(format, args...)}
}

func syntaxError(msg string) error {
	return &Error{Detail: "Syntax error in line 1:\n" + msg}
}

func accessDenied(priv string) error {
	return errorf("Access denied; you need (at least one of) the (%s) privilege(s) for this operation", priv)
}

func unknownDB(db string) error {
	return errorf("Unknown database '%s'", db)
}

func unknownTable(table string) error {
	return errorf("Unknown table '%s'", table)
}
