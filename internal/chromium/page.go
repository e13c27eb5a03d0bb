package chromium

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Page is a browser tab. Its console messages, exceptions and requests
// include those of its workers.
type Page struct {
	b       *Browser
	session string
	target  string

	// Guarded by b.mu.
	console    []ConsoleMessage
	exceptions []string
	requests   []*Request
	byID       map[string]*Request
	loads      int    // load events so far
	lastURL    string // of the main frame
	allowed    []string
}

// ConsoleMessage is a console call, or a message the browser logged
// itself (a failed load, a CSP violation).
type ConsoleMessage struct {
	Level  string // log, info, warning, error, debug...
	Source string // console-api for the page's own calls; else the browser's: network, security, javascript...
	Text   string
}

// Request is a network request of the page or its workers.
type Request struct {
	URL      string
	Method   string
	Type     string // Document, Script, Stylesheet, Image, Fetch, WebSocket...
	Status   int    // HTTP status, 101 for an open WebSocket; 0 before a response
	MIMEType string
	Encoding string // Content-Encoding of the response
	Bytes    int64  // on the wire, headers included, once finished
	Finished bool
	Failed   string // why it failed, if it did (blocked included)
	Blocked  string // why the browser blocked it (csp, mixed-content...), if it did
	Frames   int    // WebSocket frames sent and received
}

// NewPage opens a tab on about:blank and starts recording what it does.
func (b *Browser) NewPage(ctx context.Context) (*Page, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := b.cdp.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.cdp.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: attached.SessionID, target: created.TargetID, byID: map[string]*Request{}}
	b.mu.Lock()
	b.pages[p.session] = p
	b.mu.Unlock()
	if err := p.enable(ctx, p.session, false); err != nil {
		return nil, err
	}
	return p, nil
}

// enable turns on the events a page or one of its workers reports.
func (p *Page) enable(ctx context.Context, session string, worker bool) error {
	c := p.b.cdp
	calls := []struct {
		method string
		params any
	}{
		{"Runtime.enable", nil},
		{"Network.enable", nil},
		{"Log.enable", nil},
		{"Target.setAutoAttach", map[string]any{"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}},
	}
	if !worker {
		calls = append(calls, struct {
			method string
			params any
		}{"Page.enable", nil})
	}
	var first error
	for _, x := range calls {
		// A worker may not have every domain; what it has is enabled.
		if err := c.call(ctx, session, x.method, x.params, nil); err != nil && first == nil {
			first = err
		}
	}
	if worker {
		// Workers wait for us, so that none of their output is missed.
		_ = c.call(ctx, session, "Runtime.runIfWaitingForDebugger", nil, nil)
		return nil
	}
	return first
}

func (p *Page) eventLocked(method string, params json.RawMessage) {
	switch method {
	case "Page.loadEventFired":
		p.loads++
	case "Page.frameNavigated":
		var e struct {
			Frame struct {
				ParentID string `json:"parentId"`
				URL      string `json:"url"`
				Fragment string `json:"urlFragment"`
			} `json:"frame"`
		}
		if json.Unmarshal(params, &e) == nil && e.Frame.ParentID == "" {
			p.lastURL = e.Frame.URL
		}
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Type        string          `json:"type"`
				Value       json.RawMessage `json:"value"`
				Description string          `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &e) != nil {
			return
		}
		var parts []string
		for _, a := range e.Args {
			var s string
			switch {
			case a.Type == "string" && json.Unmarshal(a.Value, &s) == nil:
			case len(a.Value) > 0:
				s = string(a.Value)
			default:
				s = a.Description
			}
			parts = append(parts, s)
		}
		p.console = append(p.console, ConsoleMessage{Level: e.Type, Source: "console-api", Text: strings.Join(parts, " ")})
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				URL       string `json:"url"`
				Line      int    `json:"lineNumber"`
				Exception *struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(params, &e) != nil {
			return
		}
		d := e.Details
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		p.exceptions = append(p.exceptions, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.Line+1))
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Source string `json:"source"`
				Level  string `json:"level"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		if json.Unmarshal(params, &e) == nil {
			text := e.Entry.Text
			if e.Entry.URL != "" && !strings.Contains(text, e.Entry.URL) {
				text += " (" + e.Entry.URL + ")"
			}
			p.console = append(p.console, ConsoleMessage{Level: e.Entry.Level, Source: e.Entry.Source, Text: text})
		}
	case "Network.requestWillBeSent":
		var e struct {
			ID      string `json:"requestId"`
			Type    string `json:"type"`
			Request struct {
				URL    string `json:"url"`
				Method string `json:"method"`
			} `json:"request"`
		}
		if json.Unmarshal(params, &e) == nil {
			// A redirect reuses the ID: the hop before it is a request of
			// its own, already in the list.
			r := &Request{URL: e.Request.URL, Method: e.Request.Method, Type: e.Type}
			p.byID[e.ID] = r
			p.requests = append(p.requests, r)
		}
	case "Network.webSocketCreated":
		var e struct {
			ID  string `json:"requestId"`
			URL string `json:"url"`
		}
		if json.Unmarshal(params, &e) == nil {
			r := &Request{URL: e.URL, Method: "GET", Type: "WebSocket"}
			p.byID[e.ID] = r
			p.requests = append(p.requests, r)
		}
	case "Network.responseReceived", "Network.webSocketHandshakeResponseReceived":
		var e struct {
			ID       string `json:"requestId"`
			Response struct {
				Status   int               `json:"status"`
				MIMEType string            `json:"mimeType"`
				Headers  map[string]string `json:"headers"`
			} `json:"response"`
		}
		if json.Unmarshal(params, &e) == nil && p.byID[e.ID] != nil {
			r := p.byID[e.ID]
			r.Status, r.MIMEType = e.Response.Status, e.Response.MIMEType
			for k, v := range e.Response.Headers {
				if strings.EqualFold(k, "Content-Encoding") {
					r.Encoding = v
				}
			}
		}
	case "Network.loadingFinished":
		var e struct {
			ID    string  `json:"requestId"`
			Bytes float64 `json:"encodedDataLength"`
		}
		if json.Unmarshal(params, &e) == nil && p.byID[e.ID] != nil {
			p.byID[e.ID].Finished, p.byID[e.ID].Bytes = true, int64(e.Bytes)
		}
	case "Network.loadingFailed":
		var e struct {
			ID      string `json:"requestId"`
			Error   string `json:"errorText"`
			Blocked string `json:"blockedReason"`
		}
		if json.Unmarshal(params, &e) == nil && p.byID[e.ID] != nil {
			if e.Error == "" {
				e.Error = "failed" // a blocked request may come without a reason
			}
			p.byID[e.ID].Failed, p.byID[e.ID].Blocked = e.Error, e.Blocked
		}
	case "Network.webSocketFrameSent", "Network.webSocketFrameReceived":
		var e struct {
			ID string `json:"requestId"`
		}
		if json.Unmarshal(params, &e) == nil && p.byID[e.ID] != nil {
			p.byID[e.ID].Frames++
		}
	}
}

// Navigate loads url and waits for its load event. A change of the
// fragment alone loads nothing and returns at once.
func (p *Page) Navigate(ctx context.Context, url string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	p.b.mu.Lock()
	before := p.loads
	p.b.mu.Unlock()
	var nav struct {
		LoaderID  string `json:"loaderId"`
		ErrorText string `json:"errorText"`
	}
	if err := p.b.cdp.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("chromium: navigate to %s: %s", url, nav.ErrorText)
	}
	if nav.LoaderID == "" {
		return nil // same document
	}
	return p.waitLoad(ctx, before, "navigate to "+url)
}

// Reload reloads the page and waits for its load event.
func (p *Page) Reload(ctx context.Context) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	p.b.mu.Lock()
	before := p.loads
	p.b.mu.Unlock()
	if err := p.b.cdp.call(ctx, p.session, "Page.reload", nil, nil); err != nil {
		return err
	}
	return p.waitLoad(ctx, before, "reload")
}

func (p *Page) waitLoad(ctx context.Context, before int, what string) error {
	if err := p.b.waitChange(ctx, func() bool { return p.loads > before }); err != nil {
		return fmt.Errorf("chromium: %s: no load event: %w", what, err)
	}
	return nil
}

// ErrJS is wrapped by Eval's error when the expression threw or its
// promise rejected.
var ErrJS = errors.New("JavaScript exception")

// ErrNoChromium: Launch found none of Binaries in PATH.
var ErrNoChromium = errors.New("chromium: no Chromium installed (apt-get install chromium)")

// Eval evaluates the JavaScript expression expr in the page, awaits it if
// it is a promise, and decodes its value (JSON-serialisable) into out
// when out is not nil. It runs as if the user had acted (a click may
// start a download).
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var res struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.b.cdp.call(ctx, p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true, "userGesture": true,
	}, &res)
	if err != nil {
		return err
	}
	if e := res.Exception; e != nil {
		msg := e.Text
		if e.Exception != nil {
			msg = e.Exception.Description
		}
		return fmt.Errorf("chromium: eval %.80q: %w: %s", expr, ErrJS, msg)
	}
	if out == nil {
		return nil
	}
	if len(res.Result.Value) == 0 {
		res.Result.Value = []byte("null") // undefined
	}
	if err := json.Unmarshal(res.Result.Value, out); err != nil {
		return fmt.Errorf("chromium: eval %.80q: result %s: %w", expr, res.Result.Value, err)
	}
	return nil
}

// pollEvery is how often WaitFor looks at its condition.
const pollEvery = 20 * time.Millisecond

// WaitFor waits until the JavaScript expression cond is truthy (awaited,
// if a promise). On timeout the error shows describe's value, an
// expression for what the page says (say, its status line), if not
// empty.
func (p *Page) WaitFor(ctx context.Context, cond, describe string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var lastErr error
	for {
		var ok bool
		// A navigation may replace the context between polls: an error
		// is another poll, not the end.
		if lastErr = p.Eval(ctx, "!!("+cond+")", &ok); lastErr == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			state := ""
			if describe != "" {
				sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
				var s any
				if err := p.Eval(sctx, describe, &s); err == nil {
					state = fmt.Sprintf("; %s is %v", describe, s)
				} else {
					state = fmt.Sprintf("; %s: %v", describe, err)
				}
				scancel()
			}
			if lastErr != nil && !errors.Is(lastErr, context.DeadlineExceeded) && !errors.Is(lastErr, context.Canceled) {
				state += fmt.Sprintf("; last look: %v", lastErr)
			}
			return fmt.Errorf("chromium: waiting for %s: %w%s", cond, ctx.Err(), state)
		case <-t.C:
		}
	}
}

// Console returns the console messages so far, the browser's own included.
func (p *Page) Console() []ConsoleMessage {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return append([]ConsoleMessage(nil), p.console...)
}

// Exceptions returns the uncaught exceptions (and unhandled rejections)
// so far.
func (p *Page) Exceptions() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return append([]string(nil), p.exceptions...)
}

// Requests returns the network requests so far, in the order they began.
func (p *Page) Requests() []Request {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	out := make([]Request, 0, len(p.requests))
	for _, r := range p.requests {
		out = append(out, *r)
	}
	return out
}

// Allow lets the exceptions and console errors whose text contains
// substr, and the blocked requests whose URL does, pass the end-of-test
// check: for tests that provoke them on purpose.
func (p *Page) Allow(substr string) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	p.allowed = append(p.allowed, substr)
}

// Problems lists what fails the test at its end: uncaught exceptions,
// CSP violations and blocked requests, and console errors, except what
// Allow let pass.
func (p *Page) Problems() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	allowed := func(s string) bool {
		for _, a := range p.allowed {
			if strings.Contains(s, a) {
				return true
			}
		}
		return false
	}
	var out []string
	for _, e := range p.exceptions {
		if !allowed(e) {
			out = append(out, "uncaught exception: "+e)
		}
	}
	for _, m := range p.console {
		if m.Level == "error" && !allowed(m.Text) {
			out = append(out, fmt.Sprintf("console error (%s): %s", m.Source, m.Text))
		}
	}
	for _, r := range p.requests {
		if r.Blocked != "" && !allowed(r.URL) {
			out = append(out, fmt.Sprintf("request blocked (%s): %s", r.Blocked, r.URL))
		}
	}
	return out
}

// CSPViolations lists the console messages that report a violation of
// the page's Content-Security-Policy.
func (p *Page) CSPViolations() []string {
	var out []string
	for _, m := range p.Console() {
		if strings.Contains(m.Text, "Content Security Policy") {
			out = append(out, m.Text)
		}
	}
	return out
}

// Origins lists the origins (scheme://host:port) the page and its
// workers made requests to, data: and blob: URLs left out.
func (p *Page) Origins() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range p.Requests() {
		u, err := url.Parse(r.URL)
		if err != nil || u.Scheme == "data" || u.Scheme == "blob" || u.Scheme == "about" {
			continue
		}
		o := u.Scheme + "://" + u.Host
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out
}

// url is the page's current URL, for messages.
func (p *Page) url() string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return p.lastURL
}

// WaitRequests waits until every request so far, WebSockets aside, has
// finished or failed: for counting what a page took to load.
func (p *Page) WaitRequests(ctx context.Context) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	err := p.b.waitChange(ctx, func() bool {
		for _, r := range p.requests {
			if r.Type != "WebSocket" && !r.Finished && r.Failed == "" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("chromium: requests still loading: %w", err)
	}
	return nil
}

// Close closes the tab (its problems are still checked at the end of the
// test).
func (p *Page) Close(ctx context.Context) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return p.b.cdp.call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.target}, nil)
}

// SetInputFiles gives the file input that selector (a CSS selector)
// finds the files at paths, as if the user had picked them; the input's
// change event fires.
func (p *Page) SetInputFiles(ctx context.Context, selector string, paths ...string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	sel, _ := json.Marshal(selector)
	var res struct {
		Result struct {
			ObjectID string `json:"objectId"`
			Subtype  string `json:"subtype"`
		} `json:"result"`
	}
	if err := p.b.cdp.call(ctx, p.session, "Runtime.evaluate", map[string]any{"expression": "document.querySelector(" + string(sel) + ")"}, &res); err != nil {
		return err
	}
	if res.Result.ObjectID == "" || res.Result.Subtype == "null" {
		return fmt.Errorf("chromium: no element %s", selector)
	}
	defer func() {
		_ = p.b.cdp.call(ctx, p.session, "Runtime.releaseObject", map[string]any{"objectId": res.Result.ObjectID}, nil)
	}()
	return p.b.cdp.call(ctx, p.session, "DOM.setFileInputFiles", map[string]any{"files": paths, "objectId": res.Result.ObjectID}, nil)
}

// DropFiles drags the files or folders at paths from outside the browser
// and drops them on the element that selector finds, at its centre, as a
// user drops them from a file manager: the page sees dragenter, dragover
// and drop with those files in its DataTransfer.
func (p *Page) DropFiles(ctx context.Context, selector string, paths ...string) error {
	sel, _ := json.Marshal(selector)
	var at struct{ X, Y float64 }
	if err := p.Eval(ctx, `(() => {
		const r = document.querySelector(`+string(sel)+`).getBoundingClientRect();
		return {x: r.x + r.width / 2, y: r.y + r.height / 2};
	})()`, &at); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	data := map[string]any{"items": []any{}, "files": paths, "dragOperationsMask": 1}
	for _, typ := range []string{"dragEnter", "dragOver", "drop"} {
		if err := p.b.cdp.call(ctx, p.session, "Input.dispatchDragEvent", map[string]any{"type": typ, "x": at.X, "y": at.Y, "data": data}, nil); err != nil {
			return fmt.Errorf("chromium: %s: %w", typ, err)
		}
	}
	return nil
}

// Call sends the DevTools command method with params to the page and
// decodes its answer into result when result is not nil: for what the
// other methods do not cover (say, Storage.overrideQuotaForOrigin).
func (p *Page) Call(ctx context.Context, method string, params, result any) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return p.b.cdp.call(ctx, p.session, method, params, result)
}
