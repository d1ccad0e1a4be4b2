#include "prp_runtime.hpp"

#include <openssl/evp.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <stdexcept>

namespace prp {

namespace {

// Lower-case hex SHA-256 of a file (OpenSSL's EVP digest), "" if it cannot be read.
std::string sha256_hex(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return "";
  std::vector<char> block(1 << 20);
  while (f) {
    f.read(block.data(), static_cast<std::streamsize>(block.size()));
    if (f.gcount() > 0 && EVP_DigestUpdate(ctx.get(), block.data(), static_cast<size_t>(f.gcount())) != 1) return "";
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) return "";
  std::string hex;
  char byte[3];
  for (unsigned int i = 0; i < length; ++i) {
    std::snprintf(byte, sizeof(byte), "%02x", digest[i]);
    hex += byte;
  }
  return hex;
}

}  // namespace

std::string parity_verdict(const std::string& model_file) {
  const std::string recheck = "; check it with `prp-deploy export RUN --verify-only`, or run it anyway with --allow-unverified";
  const size_t slash = model_file.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : model_file.substr(0, slash);
  const std::string name = slash == std::string::npos ? model_file : model_file.substr(slash + 1);
  const std::string report = dir + "/parity.json";
  if (!std::ifstream(report)) return model_file + ": no parity.json beside it, so no parity check has passed it" + recheck;
  cv::FileStorage fs(report, cv::FileStorage::READ | cv::FileStorage::FORMAT_JSON);
  if (!fs.isOpened()) return report + ": unreadable" + recheck;
  const cv::FileNode passed = fs["artifacts"][name], recorded = fs["sha256"][name];
  if (passed.empty() || recorded.empty()) return model_file + ": parity never judged this file (it is not in parity.json)" + recheck;
  if (static_cast<std::string>(recorded) != sha256_hex(model_file))
    return model_file + ": is not the file parity checked (its sha256 differs from parity.json's)" + recheck;
  if (static_cast<int>(passed) != 1) return model_file + ": parity FAILED for it (see " + report + ")" + recheck;
  return "";
}

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
