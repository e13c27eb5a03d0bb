// Package chromium runs Debian's headless Chromium for tests and drives it
// over the DevTools protocol (CDP): open pages, navigate, evaluate
// JavaScript and await its promises, wait for conditions, and read what
// the page did: console messages, uncaught exceptions, Content-Security-
// Policy violations, network requests with their bytes on the wire, and
// downloads. Tests import it (Start), and bench/browser (Launch).
//
// The CDP client is a small one over github.com/coder/websocket, which the
// project already uses, rather than chromedp: the tests need a dozen
// methods and events, and chromedp would bring its generated protocol
// bindings (several MB) and another WebSocket library for them.
//
// Every browser gets a fresh profile (in t.TempDir with Start), its own
// process group, and a cleanup (Close) that closes it, kills the group and
// waits for the client's goroutines; every wait is bounded by its context, or by DefaultTimeout
// when the context has no deadline. Pages are checked at the end of the
// test: an uncaught exception, a CSP violation or a console error fails it
// unless the test allowed it (Page.Allow).
package chromium
