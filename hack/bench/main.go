// Command bench compares the CLAIIM gate, which commits every decision to
// Chron before it answers, with OPA in server mode and with a no-op HTTP
// server (the ceiling), under the same load on the same machine.
//
//	bench run [-quick]     everything: PostgreSQL, servers, load, the table
//	bench scale [-gates 1,2,4] gate processes against one PostgreSQL, unpinned: where it saturates
//	bench abuse [-size 1k] agents at half the gate's peak under junk at ten times their rate
//	bench gen -out DIR     the fixture as files: CRs, policy.rego, data.json, requests
//	bench chron-pages      the Chron read API's pages over a large table (-rows 10000000)
//	bench writer-floor     the gate's Chron writer alone at fixed rates: the floor under the gate's latency
//	bench serve-gate ...   the gate over a fixture (run by `bench run`)
//	bench serve-noop ...   the ceiling server (run by `bench run`)
//
// `make bench` builds OPA and this command and runs `bench run`.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "scale":
		err = scale(os.Args[2:])
	case "abuse":
		err = abuse(os.Args[2:])
	case "gen":
		err = gen(os.Args[2:])
	case "chron-pages":
		err = chronPages(os.Args[2:])
	case "writer-floor":
		err = writerFloor(os.Args[2:])
	case "serve-gate":
		err = serveGate(os.Args[2:])
	case "serve-noop":
		err = serveNoop(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench run [-quick] | scale [-gates 1,2,4] | abuse [-size 1k] | gen -out DIR | chron-pages [-rows N] | writer-floor [-rates 1000,5000,10000] | serve-gate | serve-noop (see -h of each)")
	os.Exit(2)
}

func listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
