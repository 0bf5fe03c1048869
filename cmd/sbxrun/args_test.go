package main

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestRewriteArgs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"shorthand", "sbxrun base -- make test", "sbxrun run base -- make test"},
		{"shorthand flags after profile", "sbxrun base --memory 8g -- make test", "sbxrun run --memory 8g base -- make test"},
		{"run flags before and after", "sbxrun run --memory 8g base -e A=1 -- python3 x.py", "sbxrun run --memory 8g --env A=1 base -- python3 x.py"},
		{"same either side", "sbxrun run base --memory 8g -- cmd", "sbxrun run --memory 8g base -- cmd"},
		{"global flags first", "sbxrun --address /s --namespace ns base -- true", "sbxrun --address /s --namespace ns run base -- true"},
		{"global flag with =", "sbxrun --address=/s base -- true", "sbxrun --address=/s run base -- true"},
		{"docker style command without --", "sbxrun run alpine echo -n hi", "sbxrun run alpine -- echo -n hi"},
		{"flags after -- untouched", "sbxrun base -- ls --memory 3", "sbxrun run base -- ls --memory 3"},
		{"bool flag does not eat the profile", "sbxrun run --rm base -- true", "sbxrun run --rm base -- true"},
		{"combined short flags", "sbxrun run -it base -- sh", "sbxrun run -it base -- sh"},
		{"short flag with value", "sbxrun base -v /a:/b -w /b -- ls", "sbxrun run --volume /a:/b --workdir /b base -- ls"},
		{"short and long spelling of one flag", "sbxrun base -e A=1 --env B=2 -e=C=3 -- env", "sbxrun run --env A=1 --env B=2 --env=C=3 base -- env"},
		{"exec flags after the name", "sbxrun exec box -e A=1 -- sh", "sbxrun exec --env A=1 box -- sh"},
		{"spec like run", "sbxrun spec model-dev --memory 1g -- python3 x.py", "sbxrun spec --memory 1g model-dev -- python3 x.py"},
		{"other commands untouched", "sbxrun ps -a --format json", "sbxrun ps -a --format json"},
		{"exec untouched", "sbxrun exec box -- sh", "sbxrun exec box -- sh"},
		{"image reference shorthand", "sbxrun docker.io/library/alpine:3 -- sh", "sbxrun run docker.io/library/alpine:3 -- sh"},
		{"no target", "sbxrun run --rm", "sbxrun run --rm"},
		{"run flags before the profile in the shorthand", "sbxrun -d --name bg base -- sleep 100", "sbxrun run --detach --name bg base -- sleep 100"},
		{"global then run flags", "sbxrun --debug -m 1g base -- true", "sbxrun --debug run --memory 1g base -- true"},
		{"unknown flag alone is left to the parser", "sbxrun --bogus", "sbxrun --bogus"},
		{"-v before the profile is a volume, not the version", "sbxrun -v /a:/b base -- ls", "sbxrun run --volume /a:/b base -- ls"},
		{"only globals", "sbxrun --debug", "sbxrun --debug"},
		// Docker's attached short values (pflag): -t0, -sKILL, -uroot.
		{"stop -t0", "sbxrun stop -t0 a b", "sbxrun stop -t 0 a b"},
		{"kill -sKILL", "sbxrun kill -sKILL a", "sbxrun kill -s KILL a"},
		{"kill -s KILL untouched", "sbxrun kill -s KILL a", "sbxrun kill -s KILL a"},
		{"rm -f untouched", "sbxrun rm -f a", "sbxrun rm -f a"},
		{"ps -aq untouched", "sbxrun ps -aq", "sbxrun ps -aq"},
		{"attached values after -- untouched", "sbxrun stop -- -t0", "sbxrun stop -- -t0"},
		{"run -uroot", "sbxrun run -uroot base -- id", "sbxrun run --user root base -- id"},
		{"run -eA=1 -w/b", "sbxrun base -eA=1 -w/b -- env", "sbxrun run --env A=1 --workdir /b base -- env"},
		{"run -itu0:0 combined", "sbxrun run -itu0:0 base -- id", "sbxrun run -itu 0:0 base -- id"},
		{"run -dit stays combined", "sbxrun run -dit base sh", "sbxrun run -dit base -- sh"},
	}
	app := newApp()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(rewriteArgs(app, strings.Fields(tt.in)), " ")
			if got != tt.want {
				t.Errorf("rewriteArgs(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestFlagLayer parses real command lines through the app and checks the
// profile layer the flags become.
func TestFlagLayer(t *testing.T) {
	t.Setenv("FROM_HOST", "host-value")
	app := newApp()
	var got *runOptionsResult
	for _, c := range app.Commands {
		if c.Name == "run" {
			c.Action = captureRun(&got)
		}
	}
	args := strings.Fields("sbxrun base --name box -m 512m --cpus 1.5 --pids-limit 50 -e A=1 --env FROM_HOST -e UNSET_VAR_X -v /src:/dst:ro --net none --rm=false --read-only --cap-drop ALL --cap-add NET_BIND_SERVICE --label team=ml " +
		"--add-host db:10.1.2.3 --add-host=gw:host-gateway --dns 192.0.2.53 --dns-search example.test --dns-option ndots:2 -- echo hi")
	if err := app.Run(rewriteArgs(app, args)); err != nil {
		t.Fatalf("run: %v", err)
	}
	o, p := got.opts, got.opts.Flags
	if o.Target != "base" || o.Name != "box" || o.Remove || !reflect.DeepEqual(o.Args, []string{"echo", "hi"}) {
		t.Errorf("options = target %q name %q rm %v args %q", o.Target, o.Name, o.Remove, o.Args)
	}
	if *p.Memory != "512m" || *p.CPUs != 1.5 || *p.PidsLimit != 50 || *p.Network != "none" || !*p.ReadOnly {
		t.Errorf("limits = %v %v %v %v %v", *p.Memory, *p.CPUs, *p.PidsLimit, *p.Network, *p.ReadOnly)
	}
	wantEnv := map[string]string{"A": "1", "FROM_HOST": "host-value"}
	if !reflect.DeepEqual(p.Env, wantEnv) {
		t.Errorf("env = %v, want %v", p.Env, wantEnv)
	}
	if len(p.Mounts) != 1 || p.Mounts[0].Source != "/src" || p.Mounts[0].Target != "/dst" || !p.Mounts[0].ReadOnly {
		t.Errorf("mounts = %+v", p.Mounts)
	}
	if !reflect.DeepEqual(p.CapDrop, []string{"ALL"}) || !reflect.DeepEqual(p.CapAdd, []string{"NET_BIND_SERVICE"}) || p.Labels["team"] != "ml" {
		t.Errorf("caps/labels = %v %v %v", p.CapDrop, p.CapAdd, p.Labels)
	}
	if !reflect.DeepEqual(p.AddHosts, []string{"db:10.1.2.3", "gw:host-gateway"}) || !reflect.DeepEqual(p.DNS, []string{"192.0.2.53"}) ||
		!reflect.DeepEqual(p.DNSSearch, []string{"example.test"}) || !reflect.DeepEqual(p.DNSOptions, []string{"ndots:2"}) {
		t.Errorf("hosts/dns = %q %q %q %q", p.AddHosts, p.DNS, p.DNSSearch, p.DNSOptions)
	}
	if p.Workdir != nil || p.User != nil || p.Image != nil {
		t.Errorf("unset flags must stay nil: workdir %v user %v image %v", p.Workdir, p.User, p.Image)
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct{ args, want string }{
		{"sbxrun base -e =x -- true", "invalid -e"},
		{"sbxrun base --label sbxrun.rm=false -- true", "invalid --label"},
		{"sbxrun base -v nocolon -- true", "nocolon"},
		{"sbxrun base --env-file /nonexistent/file -- true", "/nonexistent/file"},
		{"sbxrun --debug nvidia-cdi-hook noop", "with nothing before it"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			app := newApp()
			var got *runOptionsResult
			for _, c := range app.Commands {
				if c.Name == "run" {
					c.Action = captureRun(&got)
				}
			}
			err := app.Run(rewriteArgs(app, strings.Fields(tt.args)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestLayering enforces the layering rule: nothing below cmd/ imports the
// CLI library.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../runtime", "../../oci", "../../images", "../../hooks").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/urfave/cli") {
			t.Errorf("a package below cmd/ depends on %s", pkg)
		}
	}
}

// TestFlagsAfterArguments: flags after a command's arguments are read, as
// Docker's parser reads them (`stop web -t 0`); "--" still ends them.
func TestFlagsAfterArguments(t *testing.T) {
	app := newApp()
	for _, tt := range []struct{ in, want string }{
		{"sbxrun stop web -t 0", "sbxrun stop -t 0 web"},
		{"sbxrun stop web -t0", "sbxrun stop -t 0 web"},
		{"sbxrun login localhost:5000 --insecure-registry localhost:5000 -u me", "sbxrun login --insecure-registry localhost:5000 -u me localhost:5000"},
		{"sbxrun rm -f a b", "sbxrun rm -f a b"},
		{"sbxrun logs web -f", "sbxrun logs -f web"},
	} {
		got := strings.Join(rewriteArgs(app, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("rewriteArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
