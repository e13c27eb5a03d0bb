// Package browser serves the p2pxfer web page: a browser tab that joins a
// room with the same protocols as the CLI (signalling, CPace, sealed
// signalling, the signed manifest and the data channel protocol), so a
// recipient who cannot install anything still gets a verified,
// password-protected transfer. The page is plain ES modules embedded in
// the binary (web/); its cryptography and wire code (web/js/, on the
// vendored noble libraries in web/vendor/) is tested against the Go
// packages' own values by running node on jstest/ (jscrypto_test.go).
// The page receives (web/js/receive.js) into the browser's private file
// system, or into IndexedDB where it is no secure context (plain http
// from another machine), verifying every chunk in a worker; either way a
// reload resumes. receive_test.go drives it in real headless Chromium
// against the engine `p2pxfer send` runs.
package browser
