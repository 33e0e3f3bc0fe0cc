package cli

import (
	"fmt"
	"io"
	"sync"
)

// statusLine is one line on a terminal's stderr that is redrawn in place:
// the progress of bench and retain-clear. When off it writes nothing.
type statusLine struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	shown bool
}

// draw replaces the line with s.
func (l *statusLine) draw(s string) {
	if !l.on {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprint(l.w, "\r\033[K"+s)
	l.shown = true
}

// clear removes the line, if one is shown.
func (l *statusLine) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shown {
		fmt.Fprint(l.w, "\r\033[K")
		l.shown = false
	}
}

// Write writes p, clearing the status line first (p should end in a
// newline: the next draw puts the status line back after it).
func (l *statusLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shown {
		fmt.Fprint(l.w, "\r\033[K")
		l.shown = false
	}
	return l.w.Write(p)
}

// println writes s on a line of its own, clearing the status line first.
func (l *statusLine) println(s string) {
	_, _ = l.Write([]byte(s + "\n"))
}
