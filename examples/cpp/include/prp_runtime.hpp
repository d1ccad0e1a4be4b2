// prp-deploy C++ runtime: the export folder's model through OpenCV's DNN module.
//
// Preprocessing is read from model.json, never assumed, and matches the Python runtime:
// BGR -> RGB, short side to `short_side` (long side rounded half up), bilinear; center crop
// `crop`; values / 255; (x - mean) / std; layout N x 3 x T x crop x crop.
#pragma once

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include <string>
#include <vector>

namespace prp {

struct ModelInfo {
  std::string kind;                  // "recognizer" or "encoder"
  std::vector<std::string> classes;  // empty for an encoder
  int frames = 16;                   // T
  int crop = 112;
  int short_side = 128;
  int sample_rate = 1;
  double train_fps = 0.0;
  cv::Vec3f mean{0.f, 0.f, 0.f};
  cv::Vec3f std{1.f, 1.f, 1.f};
};

// Reads DIR/model.json (OpenCV's FileStorage parses JSON). Throws std::runtime_error.
ModelInfo load_model_info(const std::string& export_dir);

// Why `model_file` may not be served, or "" when parity.json beside it lists it as passed
// with this file's SHA-256 (the same rule as the Python runtime: FAILED, never judged,
// changed since, or no parity.json are all refused).
std::string parity_verdict(const std::string& model_file);

// One decoded BGR frame -> the RGB crop the model sees (crop x crop x 3, uint8).
cv::Mat preprocess_frame(const cv::Mat& bgr, const ModelInfo& info);

// Windows of T preprocessed frames -> the input blob N x 3 x T x crop x crop (float32).
cv::Mat make_blob(const std::vector<std::vector<cv::Mat>>& windows, const ModelInfo& info);

struct Outputs {
  cv::Mat logits;    // N x classes (empty for an encoder)
  cv::Mat features;  // N x D
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Outputs run(const cv::Mat& blob) = 0;
};

class OpenCvDnnBackend : public Backend {
 public:
  explicit OpenCvDnnBackend(const std::string& onnx_path, bool has_logits);
  Outputs run(const cv::Mat& blob) override;

 private:
  cv::dnn::Net net_;
  bool has_logits_;
};

// Softmax of one row of logits, then the k best (index, probability).
std::vector<std::pair<int, float>> top_k(const cv::Mat& logits_row, int k);

}  // namespace prp
