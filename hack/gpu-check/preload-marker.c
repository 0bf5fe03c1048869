/*
 * preload-marker: a library the GPU check image names in LD_PRELOAD
 * (hack/gpu-pack.sh, image localhost/sbxrun/gpu-check-preload:1). Loaded
 * into any process, it appends that process's name to
 * /tmp/sbxrun-preload-marker in the process's own view of /tmp. The
 * sandbox's workload is meant to load it (the control); a CDI hook that
 * runs on the host never may (CVE-2025-23266): hack/gpu-check.sh fails when
 * the host's /tmp gets the file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void mark(void)
{
	char comm[64] = "?";
	int f = open("/proc/self/comm", O_RDONLY);
	if (f >= 0) {
		ssize_t n = read(f, comm, sizeof comm - 1);
		comm[n > 0 ? n : 0] = 0;
		close(f);
	}
	int m = open("/tmp/sbxrun-preload-marker", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (m >= 0) {
		ssize_t w = write(m, comm, strlen(comm));
		(void)w;
		close(m);
	}
}
