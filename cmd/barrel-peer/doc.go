// Command barrel-peer is barrel's one binary: the daemon (run) and client
// commands that drive a running daemon over its HTTP API.
//
// It owns flags, the configuration file, signals and exit codes; it holds
// no database logic. The daemon opens a node.Node, serves httpapi on a
// loopback address by default, and on SIGINT or SIGTERM shuts the HTTP
// server down before closing the node.
//
// Exit codes: 0 success, 1 error (the server's reason on stderr as
// "barrel-peer: <reason>"), 2 usage error, 3 not found, so that shell
// scripts can test for existence:
//
//	barrel-peer run --data ./data &
//	barrel-peer create-db places
//	barrel-peer put places p1 '{"locations":{"country":"Germany"}}'
//	barrel-peer get places p1 /locations/country
//	barrel-peer query places /locations/country == Germany
//
// Client commands find the daemon through --api, then $BARREL_API, then
// http://127.0.0.1:7080, and send --token (or $BARREL_TOKEN) as a bearer
// token when set.
package main
