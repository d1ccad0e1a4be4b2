"""Test double of cuda.bindings (see tests/trt_double/README.md): not CUDA."""
