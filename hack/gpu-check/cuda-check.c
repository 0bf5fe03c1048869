/*
 * cuda-check: a CUDA driver API check that needs no CUDA toolkit, for the
 * GPU check image (hack/gpu-pack.sh). It loads libcuda.so.1, which CDI mounts
 * from the host's driver, initialises CUDA, and on every GPU creates a
 * context, allocates 64 MiB, fills it on the device and reads it back.
 * Exit 0 when every step worked on every GPU.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef unsigned long long CUdeviceptr;

#define LOAD(name, sym)                                                      \
	name = dlsym(lib, sym);                                                  \
	if (!name) {                                                             \
		fprintf(stderr, "cuda-check: %s missing from libcuda.so.1\n", sym); \
		return 1;                                                            \
	}

static double ms_since(struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

int main(void)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	void *lib = dlopen("libcuda.so.1", RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "cuda-check: %s\n", dlerror());
		return 1;
	}
	CUresult (*cuInit)(unsigned);
	CUresult (*cuDriverGetVersion)(int *);
	CUresult (*cuDeviceGetCount)(int *);
	CUresult (*cuDeviceGet)(CUdevice *, int);
	CUresult (*cuDeviceGetName)(char *, int, CUdevice);
	CUresult (*cuDeviceTotalMem)(size_t *, CUdevice);
	CUresult (*cuCtxCreate)(CUcontext *, unsigned, CUdevice);
	CUresult (*cuCtxDestroy)(CUcontext);
	CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
	CUresult (*cuMemFree)(CUdeviceptr);
	CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
	CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
	LOAD(cuInit, "cuInit");
	LOAD(cuDriverGetVersion, "cuDriverGetVersion");
	LOAD(cuDeviceGetCount, "cuDeviceGetCount");
	LOAD(cuDeviceGet, "cuDeviceGet");
	LOAD(cuDeviceGetName, "cuDeviceGetName");
	LOAD(cuDeviceTotalMem, "cuDeviceTotalMem_v2");
	LOAD(cuCtxCreate, "cuCtxCreate_v2");
	LOAD(cuCtxDestroy, "cuCtxDestroy_v2");
	LOAD(cuMemAlloc, "cuMemAlloc_v2");
	LOAD(cuMemFree, "cuMemFree_v2");
	LOAD(cuMemsetD8, "cuMemsetD8_v2");
	LOAD(cuMemcpyDtoH, "cuMemcpyDtoH_v2");

	CUresult r;
	if ((r = cuInit(0)) != 0) {
		fprintf(stderr, "cuda-check: cuInit: error %d\n", r);
		return 1;
	}
	int version = 0, count = 0;
	cuDriverGetVersion(&version);
	if ((r = cuDeviceGetCount(&count)) != 0 || count == 0) {
		fprintf(stderr, "cuda-check: cuDeviceGetCount: error %d, %d devices\n", r, count);
		return 1;
	}
	printf("cuda-check: CUDA driver API %d.%d, %d device(s), init %.1f ms\n", version / 1000, (version % 1000) / 10, count, ms_since(&t0));

	const size_t size = 64 << 20;
	static unsigned char host[4096];
	for (int i = 0; i < count; i++) {
		CUdevice dev;
		CUcontext ctx;
		CUdeviceptr p;
		char name[256] = "";
		size_t total = 0;
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if ((r = cuDeviceGet(&dev, i)) != 0 || (r = cuDeviceGetName(name, sizeof name, dev)) != 0 ||
		    (r = cuDeviceTotalMem(&total, dev)) != 0) {
			fprintf(stderr, "cuda-check: device %d: error %d\n", i, r);
			return 1;
		}
		if ((r = cuCtxCreate(&ctx, 0, dev)) != 0) {
			fprintf(stderr, "cuda-check: device %d: cuCtxCreate: error %d\n", i, r);
			return 1;
		}
		if ((r = cuMemAlloc(&p, size)) != 0 || (r = cuMemsetD8(p, 0x5a, size)) != 0 ||
		    (r = cuMemcpyDtoH(host, p + size - sizeof host, sizeof host)) != 0) {
			fprintf(stderr, "cuda-check: device %d: memory: error %d\n", i, r);
			return 1;
		}
		for (size_t j = 0; j < sizeof host; j++) {
			if (host[j] != 0x5a) {
				fprintf(stderr, "cuda-check: device %d: read back 0x%02x at %zu, wrote 0x5a\n", i, host[j], j);
				return 1;
			}
		}
		cuMemFree(p);
		cuCtxDestroy(ctx);
		printf("cuda-check: device %d: %s, %zu MiB, context + 64 MiB fill/read back OK in %.1f ms\n", i, name, total >> 20, ms_since(&t1));
	}
	return 0;
}
