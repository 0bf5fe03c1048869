package gpu

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/parser"
)

// Request is a GPU request in Docker's --gpus syntax.
type Request struct {
	// None asks for no GPU ("none", sbxrun's addition: it turns off a
	// profile's GPUs).
	None bool
	// All asks for every GPU ("all", "count=all").
	All bool
	// Count asks for that many GPUs, the lowest indices first ("2",
	// "count=2").
	Count int
	// IDs are GPU indices, MIG indices (GPU:MIG) or UUIDs ("0,2",
	// "device=GPU-...", "device=0,2").
	IDs []string
}

// ParseRequest parses a --gpus value: all, none, a count N, a list of
// indices or UUIDs (0,2 or device=0,2 or device=GPU-UUID), or Docker's
// comma-separated options (count=N, device=..., driver=nvidia,
// capabilities=...; capabilities are accepted and ignored: a CDI device
// brings the whole driver). Surrounding double quotes, which Docker's
// syntax needs for device lists, are dropped.
func ParseRequest(s string) (Request, error) {
	v := strings.TrimSpace(s)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	bad := func(why string) (Request, error) {
		return Request{}, fmt.Errorf("invalid GPU request %q: %s: use all, none, a count such as 2, indices such as 0,2, or device=UUID", s, why)
	}
	switch v {
	case "":
		return bad("empty")
	case "all":
		return Request{All: true}, nil
	case "none":
		return Request{None: true}, nil
	}
	var r Request
	mode := "device"
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if key, val, ok := strings.Cut(f, "="); ok {
			mode = key
			switch key {
			case "count":
				if val == "all" {
					r.All = true
					continue
				}
				n, err := strconv.Atoi(val)
				if err != nil || n < 1 {
					return bad("count must be a number from 1, or all")
				}
				r.Count = n
				continue
			case "driver":
				if val != "nvidia" {
					return bad(fmt.Sprintf("driver %q: only nvidia GPUs come through --gpus; use --device VENDOR/CLASS=NAME for others", val))
				}
				continue
			case "capabilities", "device":
				f = val
			default:
				return bad(fmt.Sprintf("unknown option %q", key))
			}
		}
		switch {
		case mode == "capabilities":
			continue
		case mode != "device":
			// A bare value continues only a device or capabilities list.
			return bad(fmt.Sprintf("%q follows %s=, which takes one value: name devices with device=%s", f, mode, f))
		case f == "":
			return bad("empty device")
		case mode == "device" && gpuIndex.MatchString(f) && !strings.Contains(v, ",") && !strings.Contains(v, "="):
			// A lone number is a count, as in Docker.
			n, _ := strconv.Atoi(f)
			if n < 1 {
				return Request{}, fmt.Errorf("invalid GPU request %q: a lone number is a count of GPUs, as in Docker: for GPU 0 write device=0, for no GPU none", s)
			}
			r.Count = n
		case !isGPUID(f):
			return bad(fmt.Sprintf("%q is not a GPU index or UUID", f))
		default:
			if !slices.Contains(r.IDs, f) {
				r.IDs = append(r.IDs, f)
			}
		}
	}
	set := 0
	for _, b := range []bool{r.All, r.Count > 0, len(r.IDs) > 0} {
		if b {
			set++
		}
	}
	switch {
	case set == 0:
		return bad("nothing asked for")
	case set > 1:
		return bad("give either all, a count or devices")
	}
	return r, nil
}

// String is the request in ParseRequest's syntax.
func (r Request) String() string {
	switch {
	case r.None:
		return "none"
	case r.All:
		return "all"
	case r.Count > 0:
		return strconv.Itoa(r.Count)
	}
	return "device=" + strings.Join(r.IDs, ",")
}

// Devices turns the request into fully qualified CDI device names, given
// the names of the nvidia.com/gpu devices the specs define (available).
// All is the "all" device (or every GPU index when a spec has none); a
// count takes the lowest indices; IDs name devices as they are (the CDI
// registry says which it does not know). None is no device.
func (r Request) Devices(available []string) ([]string, error) {
	qualify := func(names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = Kind + "=" + n
		}
		return out
	}
	var indices []string
	for _, n := range available {
		if gpuIndex.MatchString(n) {
			indices = append(indices, n)
		}
	}
	sort.Slice(indices, func(i, j int) bool { return nameLess(indices[i], indices[j]) })
	switch {
	case r.None:
		return nil, nil
	case r.All && slices.Contains(available, "all"):
		return qualify([]string{"all"}), nil
	case r.All && len(indices) > 0:
		return qualify(indices), nil
	case r.All:
		return qualify([]string{"all"}), nil // the registry says why it is missing
	case r.Count > 0 && len(indices) == 0:
		// No spec at all: the registry says why, with the fix.
		for i := range r.Count {
			indices = append(indices, strconv.Itoa(i))
		}
		return qualify(indices), nil
	case r.Count > 0 && r.Count > len(indices):
		return nil, fmt.Errorf("asked for %d GPUs, but the CDI specs define %d%s", r.Count, len(indices), listed(indices))
	case r.Count > 0:
		return qualify(indices[:r.Count]), nil
	}
	return qualify(r.IDs), nil
}

// listed renders " (0, 1)" or "".
func listed(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// isGPUID reports whether id names a GPU as --gpus may: an index, a MIG
// index (GPU:MIG) or a GPU or MIG UUID.
func isGPUID(id string) bool {
	if gpuIndex.MatchString(id) || migIndex.MatchString(id) {
		return true
	}
	return (strings.HasPrefix(id, "GPU-") || strings.HasPrefix(id, "MIG-")) && parser.ValidateDeviceName(id) == nil
}
