// TensorRT variant of the backend: runs model.plan (built by `prp-deploy export --trt`) with
// enqueueV3. Compiled only when CMake finds TensorRT's C++ SDK and the CUDA runtime.
#include "prp_runtime.hpp"

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

class Logger : public nvinfer1::ILogger {
  void log(Severity severity, const char* msg) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << std::endl;
  }
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

class TensorRtBackend : public prp::Backend {
 public:
  TensorRtBackend(const std::string& plan, bool has_logits) : has_logits_(has_logits) {
    std::ifstream f(plan, std::ios::binary);
    if (!f) throw std::runtime_error(plan + ": cannot be read (build it with `prp-deploy export --trt`)");
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw std::runtime_error("TensorRT could not create a runtime (no usable GPU, or a TensorRT/driver mismatch)");
    engine_.reset(runtime_->deserializeCudaEngine(bytes.data(), bytes.size()));
    if (!engine_) throw std::runtime_error(plan + ": TensorRT could not deserialize it (another TensorRT version or GPU?); rebuild it here");
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw std::runtime_error(plan + ": TensorRT could not create an execution context");
    min_batch_ = engine_->getProfileShape("clip", 0, nvinfer1::OptProfileSelector::kMIN).d[0];
    max_batch_ = engine_->getProfileShape("clip", 0, nvinfer1::OptProfileSelector::kMAX).d[0];
    try {  // a throw below would skip the destructor: free what was allocated so far, then rethrow
      check(cudaStreamCreate(&stream_), "cudaStreamCreate");
      for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
        const char* name = engine_->getIOTensorName(i);
        if (engine_->getTensorDataType(name) != nvinfer1::DataType::kFLOAT)
          throw std::runtime_error(plan + ": tensor " + name + " is not float32; re-export with `prp-deploy export --trt`");
        nvinfer1::Dims d = engine_->getTensorShape(name);
        size_t count = 1;
        for (int k = 0; k < d.nbDims; ++k) count *= (d.d[k] < 0 ? max_batch_ : d.d[k]);
        void* ptr = nullptr;
        check(cudaMalloc(&ptr, count * sizeof(float)), "cudaMalloc");
        buffers_[name] = ptr;
      }
    } catch (...) {
      release();
      throw;
    }
  }
  ~TensorRtBackend() override { release(); }
  prp::Outputs run(const cv::Mat& blob) override {
    const int n = blob.dims == 5 ? blob.size[0] : 0;
    if (n < 1) throw std::runtime_error("an empty batch (0 clips): nothing to run");  // and no division by zero below
    if (n > max_batch_) throw std::runtime_error("batch larger than the engine's profile maximum");
    cv::Mat padded = blob;
    if (n < min_batch_) {  // a short tail under the profile's minimum: pad with copies of the last clip, keep n rows of output
      int sizes[5] = {min_batch_, blob.size[1], blob.size[2], blob.size[3], blob.size[4]};
      padded = cv::Mat(5, sizes, CV_32F);
      const size_t clip = blob.total() / n;
      for (int i = 0; i < min_batch_; ++i)
        std::copy_n(blob.ptr<float>() + std::min(i, n - 1) * clip, clip, padded.ptr<float>() + i * clip);
    }
    nvinfer1::Dims in;
    in.nbDims = 5;
    for (int k = 0; k < 5; ++k) in.d[k] = padded.size[k];
    if (!context_->setInputShape("clip", in)) throw std::runtime_error("TensorRT refused the input shape (outside the engine's profile)");
    check(cudaMemcpyAsync(buffers_["clip"], padded.ptr<float>(), padded.total() * sizeof(float), cudaMemcpyHostToDevice, stream_), "copy in");
    for (auto& b : buffers_)
      if (!context_->setTensorAddress(b.first.c_str(), b.second))
        throw std::runtime_error("TensorRT refused the device address of tensor " + b.first);
    if (!context_->enqueueV3(stream_)) throw std::runtime_error("enqueueV3 failed");
    prp::Outputs o;
    auto fetch = [&](const char* name) {
      nvinfer1::Dims d = context_->getTensorShape(name);
      cv::Mat m(d.d[0], d.d[1], CV_32F);
      check(cudaMemcpyAsync(m.ptr<float>(), buffers_[name], m.total() * sizeof(float), cudaMemcpyDeviceToHost, stream_), "copy out");
      return m;
    };
    if (has_logits_) o.logits = fetch("logits");
    o.features = fetch("features");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    if (n < min_batch_) {
      if (has_logits_) o.logits = o.logits.rowRange(0, n).clone();
      o.features = o.features.rowRange(0, n).clone();
    }
    return o;
  }

 private:
  Logger logger_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  void release() noexcept {
    if (stream_) cudaStreamSynchronize(stream_);  // no copy may still target a buffer freed below
    for (auto& b : buffers_) cudaFree(b.second);
    buffers_.clear();
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

  std::map<std::string, void*> buffers_;
  cudaStream_t stream_ = nullptr;
  int min_batch_ = 1;
  int max_batch_ = 1;
  bool has_logits_;
};

}  // namespace

std::unique_ptr<prp::Backend> make_tensorrt_backend(const std::string& plan, bool has_logits) {
  return std::make_unique<TensorRtBackend>(plan, has_logits);
}
