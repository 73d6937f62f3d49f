package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 on every architecture Go supports here.
const userHZ = 100

// meter measures a process's CPU time and peak resident memory over a
// measured run: utime+stime from /proc/<pid>/stat before and after, and
// VmRSS from /proc/<pid>/status every 50 ms. The kernel's own high-water
// mark (VmHWM) is reset at the start (clear_refs 5), so a spike between
// two samples is caught too.
type meter struct {
	pid   int
	cpu0  float64
	start time.Time
	peak  atomic.Int64
	stop  chan struct{}
	done  chan struct{}
}

// startMeter starts measuring pid.
func startMeter(pid int) (*meter, error) {
	// Best effort: old kernels or a foreign process refuse it; sampling
	// still works.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	cpu, err := cpuSeconds(pid)
	if err != nil {
		return nil, err
	}
	m := &meter{pid: pid, cpu0: cpu, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	if rss, _, err := memStatus(pid); err == nil {
		m.peak.Store(rss)
	}
	go m.sample()
	return m, nil
}

func (m *meter) sample() {
	defer close(m.done)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		rss, _, err := memStatus(m.pid)
		if err != nil {
			return // the process is gone; Stop reports what it saw
		}
		if rss > m.peak.Load() {
			m.peak.Store(rss)
		}
	}
}

// usage is what a meter measured.
type usage struct {
	// CPUSeconds and PeakRSSBytes are the measured process's, when
	// Process; for several processes (a cluster's nodes) the sum of their
	// CPU and the largest single process's peak, with PeakRSSSumBytes
	// the sum of their peaks.
	CPUSeconds      float64
	PeakRSSBytes    int64
	PeakRSSSumBytes int64
	Process         bool
	// ProcessCPU is each process's CPU seconds, in the order given.
	ProcessCPU []float64
	// PipelineCPU is the CPU seconds of the process and of the PostgreSQL
	// processes of its pipeline (runMeter), nil when not measured;
	// PipelineProcs counts those PostgreSQL processes.
	PipelineCPU   *float64
	PipelineProcs int
	// SideCPU is the PostgreSQL processes' CPU seconds per side
	// ("source": walsender and capture sessions; "destination": apply
	// sessions or subscription workers).
	SideCPU map[string]float64
}

// Stop ends the measurement.
func (m *meter) Stop() usage {
	close(m.stop)
	<-m.done
	u := usage{PeakRSSBytes: m.peak.Load(), Process: true}
	if cpu, err := cpuSeconds(m.pid); err == nil {
		u.CPUSeconds = cpu - m.cpu0
	}
	if _, hwm, err := memStatus(m.pid); err == nil && hwm > u.PeakRSSBytes {
		u.PeakRSSBytes = hwm
	}
	return u
}

// cpuSeconds is the process's user plus system CPU time.
func cpuSeconds(pid int) (float64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return float64(ut+st) / userHZ, nil
}

// statFields are the fields of /proc/<pid>/stat from field 3 (state) on:
// field N is at index N-3. The command name (field 2) may hold spaces, so
// the split starts after its closing parenthesis.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// memStatus returns VmRSS and VmHWM in bytes.
func memStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		default:
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 2 {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, 0, err
			}
			*dst = kb * 1024
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}
