// Package gpu gives sandboxes NVIDIA GPUs through the Container Device
// Interface (CDI), with no NVIDIA runtime shim and no legacy prestart hook.
//
//	Setup (`sbxrun gpu setup`): NVML -> nvcdi (NVML mode) -> a CDI spec with
//	  devices all, 0..N-1, each UUID and MIG devices, hooks that run the sbxrun
//	  binary itself as nvidia-cdi-hook -> /var/run/cdi/nvidia.yaml
//	ParseRequest (--gpus, profile key gpus) -> Request.Devices -> CDI names
//	Refresh (every run that asks for GPUs): a spec made for another driver
//	  version, or naming host files that are gone, is regenerated (in place
//	  when sbxrun may rewrite it, else in memory for this run) or refused
//	  with the exact command that fixes it
//	Status (`sbxrun gpu status`): driver, GPUs, spec files, freshness, hooks
//
// Spec generation uses go-nvml, which needs cgo; tests pass go-nvml's mock
// GPU servers (a DGX A100 with 8 GPUs) through Options.NVML.
package gpu
