package cmd

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"

	"github.com/p2pxfer/p2pxfer/chunker"
)

// bars draws any number of progress bars (bytes, rate, ETA), one line each,
// redrawn in place below the messages printed with println. Where stderr is
// not a terminal (a log file, a test) it draws no bars, only the messages.
type bars struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	order []string
	bars  map[string]*progressbar.ProgressBar
	// val is each bar's latest value. A bar renders itself on every Set
	// (~30 µs here), and recv sets one per piece: a thousand small files
	// spent ~30 ms of the transfer's event loop on bars nobody saw. So
	// values go to the bars only when the screen is redrawn.
	val   map[string]int64
	drawn int // bar lines on screen
	last  time.Time
}

func newBars(env Env) *bars {
	w := env.Stderr
	if w == nil {
		w = io.Discard
	}
	return &bars{w: w, tty: env.Terminal, bars: map[string]*progressbar.ProgressBar{}, val: map[string]int64{}}
}

// add starts a bar under id.
func (b *bars) add(id, desc string, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.bars[id]; !ok {
		b.order = append(b.order, id)
	}
	b.bars[id] = progressbar.NewOptions64(total,
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWriter(io.Discard), // we draw String() ourselves
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(20),
		progressbar.OptionThrottle(0),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionUseIECUnits(true),
	)
	delete(b.val, id)
	b.redraw(true)
}

// describe relabels bar id.
func (b *bars) describe(id, desc string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bar := b.bars[id]; bar != nil {
		bar.Describe(desc)
		b.redraw(false)
	}
}

// set moves bar id to n; the screen is redrawn at most ten times a second.
func (b *bars) set(id string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bars[id] != nil {
		b.val[id] = n
		b.redraw(false)
	}
}

// render brings bar id up to its latest value.
func (b *bars) render(id string) *progressbar.ProgressBar {
	bar := b.bars[id]
	if n, ok := b.val[id]; ok {
		_ = bar.Set64(n)
		delete(b.val, id)
	}
	return bar
}

// remove takes bar id away; with keep its last state stays on screen.
func (b *bars) remove(id string, keep bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bar := b.bars[id]
	if bar == nil {
		return
	}
	bar = b.render(id)
	delete(b.bars, id)
	for i, o := range b.order {
		if o == id {
			b.order = append(b.order[:i], b.order[i+1:]...)
			break
		}
	}
	if keep && b.tty {
		b.clear()
		fmt.Fprintln(b.w, line(bar))
	}
	b.redraw(true)
}

// println prints a message above the bars, made safe (errors from peers
// are in some).
func (b *bars) println(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
	fmt.Fprintln(b.w, safeText(fmt.Sprintf(format, args...)))
	b.redraw(true)
}

// close removes all bars from the screen.
func (b *bars) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
	b.bars, b.order, b.val = map[string]*progressbar.ProgressBar{}, nil, map[string]int64{}
}

func (b *bars) clear() {
	for ; b.drawn > 0; b.drawn-- {
		fmt.Fprint(b.w, "\x1b[1A\x1b[2K") // up one line, erase it
	}
}

func (b *bars) redraw(now bool) {
	if !b.tty || (!now && time.Since(b.last) < 100*time.Millisecond) {
		return
	}
	b.last = time.Now()
	b.clear()
	var sb strings.Builder
	for _, id := range b.order {
		sb.WriteString(line(b.render(id)))
		sb.WriteByte('\n')
		b.drawn++
	}
	fmt.Fprint(b.w, sb.String())
}

func line(bar *progressbar.ProgressBar) string {
	return strings.TrimSpace(strings.ReplaceAll(bar.String(), "\r", ""))
}

// quoteName prints a file name from the network safely: as is when it is
// plain printable text, else quoted with escapes, so no name can move the
// cursor, clear the screen or hide its real ending.
func quoteName(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '"' || r == '\\' {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

// maxArgShown bounds how much of a value from the command line a message
// repeats: a 10 KB paste is not echoed back whole.
const maxArgShown = 64

// quoteArg is quoteName for a value the user gave, cut after maxArgShown
// bytes (at a rune boundary), with the length of the whole.
func quoteArg(s string) string {
	shown, rest := s, ""
	if len(s) > maxArgShown {
		cut := maxArgShown
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		shown, rest = s[:cut], fmt.Sprintf("... (%d bytes)", len(s))
	}
	q := quoteName(shown)
	if q == shown && (shown == "" || strings.ContainsAny(shown, " \t")) {
		// "--signal not a url is not..." would not say where it ends.
		q = strconv.Quote(shown)
	}
	return q + rest
}

// safeText escapes what is not printable in a message (a newline or an
// escape sequence in a file name it quotes, say) and leaves the rest as
// it is: messages name local files and flag values raw, and none of them
// may move the cursor or rewrite the screen.
func safeText(s string) string {
	notPrint := func(r rune) bool { return !unicode.IsPrint(r) }
	if !strings.ContainsFunc(s, notPrint) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !notPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r) // '\n', '\x1b', '\u202e'
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// maxListed bounds the files listed by name: a thousand-file transfer would
// otherwise scroll the room ID and the command to run off the screen.
const maxListed = 20

// listFiles prints one line per file, the first maxListed-1 and a count of
// the rest when there are more than maxListed.
func listFiles(w io.Writer, files []chunker.File, line func(chunker.File) string) {
	for i, f := range files {
		if i == maxListed-1 && len(files) > maxListed {
			fmt.Fprintf(w, "  ... and %d more\n", len(files)-i)
			return
		}
		fmt.Fprintf(w, "  %s\n", line(f))
	}
}
