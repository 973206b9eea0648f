#include "vitlab/results/stats.h"

#include <cmath>

#include "vitlab/error.h"

namespace vitlab {

namespace {

// The regularised incomplete beta function I_x(a, b) from its continued fraction (DLMF 8.17.22),
// I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) / (1 + d_1 / (1 + d_2 / (1 + ...))), evaluated by
// Lentz's method; past the mean (a + 1) / (a + b + 2) through I_x(a, b) = 1 - I_{1-x}(b, a),
// where the fraction converges in a few dozen terms.
double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(b, a, 1 - x);
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x)) / a;
  const double tiny = 1e-300;
  double f = 1, c = 1, d = 0;  // f = 1 + d_1 / (1 + d_2 / ...), its convergents C and D
  for (int j = 1; j <= 1000; ++j) {
    const double m = j / 2;
    const double dj = j % 2 ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                            : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1 + dj * d;
    d = 1 / (std::abs(d) < tiny ? tiny : d);
    c = 1 + dj / c;
    if (std::abs(c) < tiny) c = tiny;
    f *= c * d;
    if (std::abs(c * d - 1) < 1e-15) break;
  }
  return front / f;
}

}  // namespace

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double sample_std(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean_of(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

double student_t_cdf(double t, double dof) {
  if (!(dof > 0)) fail("student_t_cdf: degrees of freedom must be positive, got ", dof);
  // P(|T| > |t|) = I_{dof / (dof + t^2)}(dof / 2, 1 / 2).
  const double tail = 0.5 * incomplete_beta(dof / 2, 0.5, dof / (dof + t * t));
  return t >= 0 ? 1 - tail : tail;
}

double student_t_quantile(double p, double dof) {
  if (!(p > 0 && p < 1)) fail("student_t_quantile: p must be in (0, 1), got ", p);
  if (p == 0.5) return 0;
  const double q = p > 0.5 ? p : 1 - p;  // the positive quantile, by symmetry
  double lo = 0, hi = 1;
  while (student_t_cdf(hi, dof) < q && hi < 1e12) lo = hi, hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, dof) < q ? lo : hi) = mid;
  }
  const double t = 0.5 * (lo + hi);
  return p > 0.5 ? t : -t;
}

PairedDifference paired_difference(const std::vector<double>& differences) {
  PairedDifference r;
  r.n = static_cast<int>(differences.size());
  if (r.n < 2) fail("paired_difference: needs at least 2 pairs, got ", r.n);
  r.mean = mean_of(differences);
  r.se = sample_std(differences) / std::sqrt(static_cast<double>(r.n));
  const double two_sided = student_t_quantile(0.975, r.n - 1), one_sided = student_t_quantile(0.95, r.n - 1);
  r.lo = r.mean - two_sided * r.se, r.hi = r.mean + two_sided * r.se;
  r.upper = r.mean + one_sided * r.se;
  return r;
}

}  // namespace vitlab
