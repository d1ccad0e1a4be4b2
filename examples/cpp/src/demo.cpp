// prp_demo EXPORT_DIR VIDEO [--stride K] [--batch N] [--topk K]
// Streams VIDEO through the exported model and prints one JSON line per window, like
// `prp-deploy run VIDEO --model EXPORT_DIR --task recognize`: windows of T frames taken
// every sample_rate frames, starting every K frames (default half a window); a video
// shorter than one window gives one window padded with its last frame.
#include "prp_runtime.hpp"

#include <opencv2/videoio.hpp>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#ifdef PRP_WITH_TENSORRT
std::unique_ptr<prp::Backend> make_tensorrt_backend(const std::string& plan, bool has_logits);
#endif

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

struct PendingWindow {
  int number, start, end;
  std::vector<cv::Mat> frames;
};

void emit(const std::vector<PendingWindow>& batch, prp::Backend& backend, const prp::ModelInfo& info,
          const std::string& source, int topk) {
  std::vector<std::vector<cv::Mat>> clips;
  for (const auto& w : batch) clips.push_back(w.frames);
  const prp::Outputs out = backend.run(prp::make_blob(clips, info));
  for (size_t i = 0; i < batch.size(); ++i) {
    std::ostringstream line;
    line << "{\"source\": " << json_string(source) << ", \"window\": " << batch[i].number
         << ", \"start_frame\": " << batch[i].start << ", \"end_frame\": " << batch[i].end;
    if (!out.logits.empty()) {
      line << ", \"top\": [";
      const auto best = prp::top_k(out.logits.row(static_cast<int>(i)), topk);
      for (size_t k = 0; k < best.size(); ++k) {
        line << (k ? ", " : "") << "{\"label\": " << json_string(info.classes[best[k].first]) << ", \"score\": " << best[k].second << "}";
      }
      line << "]";
    }
    line << "}";
    std::cout << line.str() << std::endl;  // flushed per line: a crash keeps what was printed
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: prp_demo EXPORT_DIR VIDEO [--stride K] [--batch N] [--topk K] [--allow-unverified]" << std::endl;
    return 2;
  }
  const std::string dir = argv[1], video = argv[2];
  int stride = 0, batch_size = 8, topk = 5;
  bool allow_unverified = false;
  for (int i = 3; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--allow-unverified") { allow_unverified = true; continue; }
    if (i + 1 >= argc) { std::cerr << "error: " << flag << " needs a value" << std::endl; return 2; }
    const int value = std::atoi(argv[++i]);
    if (flag == "--stride") stride = value;
    else if (flag == "--batch") batch_size = value;
    else if (flag == "--topk") topk = value;
    else { std::cerr << "error: unknown option " << flag << std::endl; return 2; }
  }
  try {
    const prp::ModelInfo info = prp::load_model_info(dir);
    const bool has_logits = info.kind == "recognizer";
#ifdef PRP_WITH_TENSORRT
    const std::string model_file = dir + "/model.plan";
#else
    const std::string model_file = dir + "/model.onnx";
#endif
    // Parity's verdict binds here as in the Python runtime: only a file parity passed is served.
    const std::string why = prp::parity_verdict(model_file);
    if (!why.empty() && !allow_unverified) { std::cerr << "error: " << why << std::endl; return 1; }
    if (!why.empty()) std::cerr << "warning: running an unverified model (--allow-unverified): " << why.substr(0, why.find("; ")) << std::endl;
#ifdef PRP_WITH_TENSORRT
    std::unique_ptr<prp::Backend> backend = make_tensorrt_backend(model_file, has_logits);
#else
    std::unique_ptr<prp::Backend> backend = std::make_unique<prp::OpenCvDnnBackend>(model_file, has_logits);
#endif
    cv::VideoCapture cap(video);
    if (!cap.isOpened()) { std::cerr << "error: " << video << ": cannot open as a video" << std::endl; return 1; }
    const int step = info.sample_rate, span = (info.frames - 1) * step + 1;
    if (stride <= 0) stride = std::max(1, (info.frames / 2) * step);
    std::deque<std::pair<int, cv::Mat>> buffer;  // (source index, preprocessed frame)
    std::vector<PendingWindow> batch;
    int index = 0, next_start = 0, number = 0;
    auto make_window = [&](int start) {
      PendingWindow w{number++, start, start + span, {}};
      for (int j = 0; j < info.frames; ++j) {
        const int want = start + j * step;
        const cv::Mat* pick = &buffer.front().second;
        for (const auto& f : buffer) if (f.first <= want) pick = &f.second;  // past the end: the last frame repeats
        w.frames.push_back(*pick);
      }
      batch.push_back(std::move(w));
      if (static_cast<int>(batch.size()) >= batch_size) { emit(batch, *backend, info, video, topk); batch.clear(); }
    };
    cv::Mat frame;
    while (cap.read(frame)) {
      buffer.emplace_back(index, prp::preprocess_frame(frame, info));
      while (index >= next_start + span - 1) { make_window(next_start); next_start += stride; }
      while (buffer.size() > 1 && buffer[1].first <= next_start) buffer.pop_front();
      ++index;
    }
    if (index == 0) { std::cerr << "error: " << video << ": no frame decodes" << std::endl; return 1; }
    if (number == 0) make_window(0);
    if (!batch.empty()) emit(batch, *backend, info, video, topk);
    std::cerr << "frames " << index << ", windows " << number << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
