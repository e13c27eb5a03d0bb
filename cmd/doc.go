// Package cmd is the p2pxfer command line: it turns flags and environment
// variables into configuration for the other packages, draws progress bars,
// and does all the printing. Errors become one clear line and an exit code
// (see exit.go); only main calls os.Exit.
package cmd
