#include "console.hpp"

#include <iomanip>
#include <iostream>
#include <sstream>

namespace tiny {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

mbok_examples::ProgressBar progress_bar(const std::string& label, std::size_t total) {
  return mbok_examples::ProgressBar(std::cerr, label, total,
                                    mbok_examples::ProgressBar::stderr_is_terminal());
}

}  // namespace tiny
