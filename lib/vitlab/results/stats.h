#pragma once
// Small-sample statistics for comparing runs over seeds: Student's t distribution and paired
// differences (the runs of two settings matched by seed, so that data order and augmentation
// draws cancel out of the comparison).
#include <vector>

namespace vitlab {

// The mean and the sample standard deviation (n - 1 in the denominator; 0 for fewer than 2 values).
double mean_of(const std::vector<double>& v);
double sample_std(const std::vector<double>& v);

// P(T <= t) for Student's t with `dof` degrees of freedom (> 0).
double student_t_cdf(double t, double dof);
// The t with P(T <= t) = p, 0 < p < 1.
double student_t_quantile(double p, double dof);

// The mean of paired differences d_i = b_i - a_i with its standard error s_d / sqrt(n), the
// two-sided 95% confidence interval mean +- t(0.975, n - 1) se and the one-sided 95% upper
// bound mean + t(0.95, n - 1) se. Needs n >= 2 pairs; with zero spread the bounds are the mean.
struct PairedDifference {
  int n = 0;
  double mean = 0, se = 0, lo = 0, hi = 0, upper = 0;
};
PairedDifference paired_difference(const std::vector<double>& differences);

}  // namespace vitlab
