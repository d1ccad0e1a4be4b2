"""Test double of cuda-python (see tests/trt_double/README.md): not CUDA."""
