#include "prp_runtime.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace prp {

ModelInfo load_model_info(const std::string& export_dir) {
  const std::string path = export_dir + "/model.json";
  cv::FileStorage fs(path, cv::FileStorage::READ | cv::FileStorage::FORMAT_JSON);
  if (!fs.isOpened()) throw std::runtime_error(path + ": cannot be read (export the model with `prp-deploy export`)");
  if (static_cast<int>(fs["schema_version"]) != 1) throw std::runtime_error(path + ": unsupported schema_version");
  ModelInfo info;
  info.kind = static_cast<std::string>(fs["kind"]);
  for (const auto& c : fs["classes"]) info.classes.push_back(static_cast<std::string>(c));
  const cv::FileNode p = fs["preprocess"];
  if (p.empty()) throw std::runtime_error(path + ": no preprocess section");
  info.frames = static_cast<int>(p["frames"]);
  info.crop = static_cast<int>(p["crop"]);
  info.short_side = static_cast<int>(p["short_side"]);
  info.sample_rate = static_cast<int>(p["sample_rate"]);
  if (static_cast<std::string>(p["channel_order"]) != "RGB") throw std::runtime_error(path + ": expected RGB channel order");
  for (int c = 0; c < 3; ++c) {
    info.mean[c] = static_cast<float>(static_cast<double>(p["mean"][c]));
    info.std[c] = static_cast<float>(static_cast<double>(p["std"][c]));
  }
  info.train_fps = static_cast<double>(fs["train_fps"]);
  if (info.frames < 1 || info.crop < 1 || info.short_side < info.crop || info.sample_rate < 1)
    throw std::runtime_error(path + ": inconsistent preprocessing values");
  return info;
}

cv::Mat preprocess_frame(const cv::Mat& bgr, const ModelInfo& info) {
  const int w = bgr.cols, h = bgr.rows;
  cv::Size size;
  if (h <= w) {
    size = cv::Size(static_cast<int>(std::floor(static_cast<double>(info.short_side) * w / h + 0.5)), info.short_side);
  } else {
    size = cv::Size(info.short_side, static_cast<int>(std::floor(static_cast<double>(info.short_side) * h / w + 0.5)));
  }
  cv::Mat resized = bgr;
  // Area averaging when shrinking (point-sampling bilinear would alias motion), bilinear when enlarging.
  const int interp = (size.width < w) ? cv::INTER_AREA : cv::INTER_LINEAR;
  if (size != bgr.size()) cv::resize(bgr, resized, size, 0, 0, interp);
  cv::Mat rgb;
  cv::cvtColor(resized, rgb, cv::COLOR_BGR2RGB);
  const int y = (rgb.rows - info.crop) / 2, x = (rgb.cols - info.crop) / 2;
  if (x < 0 || y < 0) throw std::runtime_error("crop larger than the resized frame");
  return rgb(cv::Rect(x, y, info.crop, info.crop)).clone();
}

cv::Mat make_blob(const std::vector<std::vector<cv::Mat>>& windows, const ModelInfo& info) {
  const int n = static_cast<int>(windows.size()), t = info.frames, s = info.crop;
  const int dims[5] = {n, 3, t, s, s};
  cv::Mat blob(5, dims, CV_32F);
  float* out = blob.ptr<float>();
  const size_t plane = static_cast<size_t>(s) * s;
  for (int i = 0; i < n; ++i) {
    for (int f = 0; f < t; ++f) {
      const cv::Mat& rgb = windows[i][f];
      for (int y = 0; y < s; ++y) {
        const uint8_t* row = rgb.ptr<uint8_t>(y);
        for (int x = 0; x < s; ++x) {
          for (int c = 0; c < 3; ++c) {
            const float v = row[x * 3 + c] * (1.0f / 255.0f);
            const size_t at = ((static_cast<size_t>(i) * 3 + c) * t + f) * plane + static_cast<size_t>(y) * s + x;
            out[at] = (v - info.mean[c]) / info.std[c];
          }
        }
      }
    }
  }
  return blob;
}

OpenCvDnnBackend::OpenCvDnnBackend(const std::string& onnx_path, bool has_logits)
    : net_(cv::dnn::readNetFromONNX(onnx_path)), has_logits_(has_logits) {
  if (net_.empty()) throw std::runtime_error(onnx_path + ": OpenCV DNN could not load it");
}

Outputs OpenCvDnnBackend::run(const cv::Mat& blob) {
  net_.setInput(blob, "clip");
  Outputs o;
  if (has_logits_) {
    std::vector<cv::Mat> outs;
    net_.forward(outs, std::vector<std::string>{"logits", "features"});
    o.logits = outs[0].reshape(1, blob.size[0]).clone();
    o.features = outs[1].reshape(1, blob.size[0]).clone();
  } else {
    o.features = net_.forward("features").reshape(1, blob.size[0]).clone();
  }
  return o;
}

std::vector<std::pair<int, float>> top_k(const cv::Mat& logits_row, int k) {
  const int n = logits_row.cols;
  const float* l = logits_row.ptr<float>();
  const float mx = *std::max_element(l, l + n);
  std::vector<float> p(n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += (p[i] = std::exp(l[i] - mx));
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min(k, n);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) { return p[a] > p[b]; });
  std::vector<std::pair<int, float>> out;
  for (int i = 0; i < k; ++i) out.emplace_back(idx[i], static_cast<float>(p[idx[i]] / sum));
  return out;
}

}  // namespace prp
