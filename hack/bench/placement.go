package main

// Where each process runs. Pinned: the load generator (this process) on
// CPU 0, the server under test and PostgreSQL on CPU 1, with taskset, so
// the gate and its database share the one core OPA has to itself.
// Unpinned: no taskset for anything, every process shares every CPU, as
// on a real node.

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Placements.
const (
	placePinned   = "pinned"
	placeUnpinned = "unpinned"
)

// place runs f with this process and the servers it starts placed as pl;
// f starts PostgreSQL on pgCPUs (empty: anywhere).
func (c *config) place(pl string, f func(pgCPUs string) error) error {
	c.placement, c.loadCPU, c.srvCPU = pl, "", ""
	if c.allCPUs == "" {
		var err error
		if c.allCPUs, err = allowedCPUs(); err != nil {
			return err
		}
	}
	pgCPUs := ""
	if pl == placePinned {
		if c.cpus < 2 || exec.Command("taskset", "-c", "1", "true").Run() != nil {
			fmt.Println("note: taskset or a second CPU is unavailable; the pinned placement is skipped")
			return nil
		}
		c.loadCPU, c.srvCPU = "0", "1"
		pgCPUs = c.allCPUs // -pg-cpu any: not this process's CPU 0, which it would inherit
		if c.pgCPU == "server" {
			pgCPUs = c.srvCPU
		}
	}
	// Every thread of the generator on the load's CPUs; the processes
	// started from here inherit them unless taskset places them.
	if c.loadCPU != "" || c.repin {
		if err := setAffinity(cmp.Or(c.loadCPU, c.allCPUs)); err != nil {
			return err
		}
		c.repin = c.loadCPU != ""
	}
	procs := c.cpus
	if c.loadCPU != "" {
		procs = 1
	}
	runtime.GOMAXPROCS(procs)
	fmt.Printf("\n=== placement %s: load on CPU %s, servers on CPU %s, PostgreSQL on CPU %s ===\n",
		pl, cmp.Or(c.loadCPU, c.allCPUs), cmp.Or(c.srvCPU, c.allCPUs), cmp.Or(pgCPUs, c.allCPUs))
	return f(pgCPUs)
}

// allowedCPUs is the list of CPUs this process may run on, as taskset
// writes it ("0-1").
func allowedCPUs() (string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("/proc/self/status has no Cpus_allowed_list")
}

// setAffinity moves every thread of this process to cpus. Twice: a thread
// the runtime starts while taskset walks the list could keep the old set.
func setAffinity(cpus string) error {
	for range 2 {
		if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			return fmt.Errorf("taskset -a -p -c %s: %w: %s", cpus, err, out)
		}
	}
	return nil
}
