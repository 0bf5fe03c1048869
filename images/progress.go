package images

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/console"
	"github.com/docker/go-units"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Layer states as the progress display names them.
const (
	stateWaiting     = "waiting"
	stateExists      = "already exists"
	stateDownloading = "downloading"
	stateDownloaded  = "downloaded"
	stateExtracting  = "extracting"
	stateDone        = "done"
)

// progress shows a pull: mpb bars with bytes, speed and ETA on a terminal,
// one line per layer state change elsewhere (CI logs), nothing when out is
// nil. Every method is safe on a silent progress and from any goroutine.
type progress struct {
	out   io.Writer
	bars  *mpb.Progress
	name  string
	start time.Time

	mu     sync.Mutex
	layers map[digest.Digest]*layerProgress
	order  []digest.Digest
	// fetched counts the bytes this pull downloaded.
	fetched int64
}

type layerProgress struct {
	desc  ocispec.Descriptor
	state string
	// shown mirrors state for the bar's decorator, which must not take
	// progress.mu: bar operations made under mu wait for its rendering.
	shown   atomic.Value
	bar     *mpb.Bar
	started time.Time
	from    int64
	cur     int64
}

// isTerminal reports whether w is a terminal with a known width (a pty
// without a size cannot show bars).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	con, err := console.ConsoleFromFile(f)
	if err != nil {
		return false
	}
	ws, err := con.Size()
	return err == nil && ws.Width > 0
}

func newProgress(out io.Writer, name, platform string) *progress {
	p := &progress{out: out, name: name, start: time.Now(), layers: map[digest.Digest]*layerProgress{}}
	if out == nil {
		return p
	}
	fmt.Fprintf(out, "pulling %s (%s)\n", name, platform)
	if isTerminal(out) {
		p.bars = mpb.New(mpb.WithOutput(out), mpb.WithWidth(30), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())
	}
	return p
}

// linef prints one line when the output is not a terminal.
func (p *progress) linef(format string, a ...any) {
	if p.out != nil && p.bars == nil {
		fmt.Fprintf(p.out, format+"\n", a...)
	}
}

// layer registers a layer of the image, in image order.
func (p *progress) layer(desc ocispec.Descriptor, exists bool) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.layers[desc.Digest]; ok {
		return
	}
	l := &layerProgress{desc: desc}
	l.setState(stateWaiting)
	if exists {
		l.setState(stateExists)
	}
	p.layers[desc.Digest] = l
	p.order = append(p.order, desc.Digest)
	if p.bars != nil {
		l.bar = p.bars.New(0, mpb.BarStyle().Lbound("[").Rbound("]"),
			mpb.PrependDecorators(
				decor.Name(shortDigest(desc.Digest), decor.WCSyncSpaceR),
				decor.Any(func(decor.Statistics) string { return p.stateOf(l) }, decor.WCSyncSpaceR),
			),
			mpb.AppendDecorators(
				decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncSpace),
				decor.OnComplete(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WCSyncSpace), ""),
				decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), ""),
			))
		l.bar.SetTotal(desc.Size, false)
		if exists {
			l.bar.SetCurrent(desc.Size)
			l.bar.SetTotal(-1, true)
		}
		return
	}
	p.linef("layer %s %s: %s", shortDigest(desc.Digest), units.BytesSize(float64(desc.Size)), l.state)
}

func (p *progress) stateOf(l *layerProgress) string {
	s, _ := l.shown.Load().(string)
	return s
}

// setState changes the state of l; call with p.mu held.
func (l *layerProgress) setState(s string) {
	l.state = s
	l.shown.Store(s)
}

// set moves a layer to state and prints the change; it returns the layer,
// nil when it is not one this display shows. Call with p.mu held.
func (p *progress) set(d digest.Digest, state, detail string) *layerProgress {
	l := p.layers[d]
	if l == nil || l.state == state {
		return l
	}
	l.setState(state)
	if detail != "" {
		detail = " " + detail
	}
	p.linef("layer %s: %s%s", shortDigest(d), state, detail)
	return l
}

// downloading marks a layer's download as started at offset (a resume when
// offset > 0).
func (p *progress) downloading(desc ocispec.Descriptor, offset int64) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.layers[desc.Digest]
	if l == nil {
		return
	}
	detail := ""
	if offset > 0 {
		detail = "(resuming at " + units.BytesSize(float64(offset)) + ")"
		if l.state == stateDownloading {
			p.linef("layer %s: %s %s", shortDigest(desc.Digest), stateDownloading, detail)
		}
	}
	if l.state != stateDownloading {
		l.started = time.Now()
		l.from = offset
	}
	p.set(desc.Digest, stateDownloading, detail)
	l.cur = offset
	if l.bar != nil {
		l.bar.SetCurrent(offset)
	}
}

// add counts n bytes of a layer, read in d.
func (p *progress) add(desc ocispec.Descriptor, n int, d time.Duration) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fetched += int64(n)
	l := p.layers[desc.Digest]
	if l == nil {
		return
	}
	l.cur += int64(n)
	if l.bar != nil {
		l.bar.EwmaIncrBy(n, d)
	}
}

// downloaded marks a layer's download complete.
func (p *progress) downloaded(desc ocispec.Descriptor) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.layers[desc.Digest]
	if l == nil {
		return
	}
	el := time.Since(l.started)
	got := float64(l.cur - l.from)
	p.set(desc.Digest, stateDownloaded, fmt.Sprintf("%s in %s (%s/s)", units.BytesSize(got),
		el.Round(10*time.Millisecond), units.BytesSize(got/max(el.Seconds(), 0.001))))
}

// extracting marks a layer as being unpacked; the layer unpacked before it
// is done.
func (p *progress) extracting(desc ocispec.Descriptor) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.order {
		if l := p.layers[d]; l.state == stateExtracting && d != desc.Digest {
			l.setState(stateDone)
			if l.bar != nil {
				l.bar.SetTotal(-1, true)
			}
		}
	}
	p.set(desc.Digest, stateExtracting, "")
}

// failed marks a layer as failed.
func (p *progress) failed(desc ocispec.Descriptor, why string) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.set(desc.Digest, "failed", "("+why+")"); l != nil && l.bar != nil {
		l.bar.Abort(false)
	}
}

// retry reports a retried request.
func (p *progress) retry(host string, attempt int, why string) {
	if p.out == nil {
		return
	}
	where := ""
	if host != "" {
		where = " " + host
	}
	msg := fmt.Sprintf("retrying%s (attempt %d of %d): %s", where, attempt, requestAttempts, why)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bars != nil {
		fmt.Fprintln(p.bars, msg)
		return
	}
	p.linef("%s", msg)
}

// pulled reports the finished pull.
func (p *progress) pulled(d digest.Digest, took time.Duration) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	n, fetched := len(p.order), p.fetched
	for _, dg := range p.order {
		l := p.layers[dg]
		if l.state != stateExists {
			l.setState(stateDone)
		}
		if l.bar != nil {
			l.bar.SetTotal(-1, true)
		}
	}
	bars := p.bars
	p.bars = nil
	p.mu.Unlock()
	if bars != nil {
		bars.Wait()
	}
	fmt.Fprintf(p.out, "pulled %s %s: %d layers, %s downloaded in %s\n", p.name, d, n,
		units.BytesSize(float64(fetched)), took.Round(10*time.Millisecond))
}

// finish stops the bars; a failed pull leaves its bars where they stopped.
func (p *progress) finish() {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	bars := p.bars
	p.bars = nil
	for _, d := range p.order {
		if l := p.layers[d]; l.bar != nil && !l.bar.Completed() {
			l.bar.Abort(false)
		}
	}
	p.mu.Unlock()
	if bars != nil {
		bars.Wait()
	}
}
