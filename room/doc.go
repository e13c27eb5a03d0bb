// Package room defines the p2pxfer signalling protocol: the messages peers
// exchange with the signalling server, room IDs, passwords, and the mapping
// between error values and wire codes. It is the one place both the server
// (sigserver) and the client (signalclient, peer) agree on, so it imports
// nothing else of ours.
package room
