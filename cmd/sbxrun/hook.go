package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-cdi-hook/commands"
	"github.com/sirupsen/logrus"
	cliv3 "github.com/urfave/cli/v3"

	"github.com/sbxrun/sbxrun/hooks"
)

// serveHook runs the CDI hook that args names (args[0] is hooks.Name) with
// the NVIDIA Container Toolkit's hook commands, after reducing the
// environment to hooks.Scrub's. It returns the exit status: 0, or 1 with
// the error on stderr, which runc shows when a hook fails.
//
// The toolkit's command tree uses urfave/cli/v3; it lives here, in the CLI
// layer, beside sbxrun's own v2 commands.
func serveHook(args []string) int {
	env := hooks.Scrub(os.Environ())
	os.Clearenv()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		_ = os.Setenv(k, v)
	}

	logger := logrus.New()
	logger.SetOutput(os.Stderr)
	var debug, quiet bool
	cmd := commands.ConfigureCDIHookCommand(logger, &cliv3.Command{
		Name:  hooks.Name,
		Usage: "the CDI hooks of NVIDIA GPUs (create-symlinks, update-ldcache, ...), served by sbxrun",
		Before: func(ctx context.Context, _ *cliv3.Command) (context.Context, error) {
			switch {
			case quiet:
				logger.SetLevel(logrus.ErrorLevel)
			case debug:
				logger.SetLevel(logrus.DebugLevel)
			default:
				logger.SetLevel(logrus.InfoLevel)
			}
			return ctx, nil
		},
		Flags: []cliv3.Flag{
			&cliv3.BoolFlag{Name: "debug", Aliases: []string{"d"}, Usage: "log at debug level", Destination: &debug,
				Sources: cliv3.EnvVars("NVIDIA_CTK_DEBUG", "NVIDIA_CDI_DEBUG")},
			&cliv3.BoolFlag{Name: "quiet", Usage: "log errors only", Destination: &quiet,
				Sources: cliv3.EnvVars("NVIDIA_CTK_QUIET", "NVIDIA_CDI_QUIET")},
		},
	})
	if err := cmd.Run(context.Background(), args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", hooks.Name, err)
		return 1
	}
	return 0
}
