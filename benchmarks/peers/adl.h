// Helpers of the ADL benchmark queries Q5-Q8 for RDataFrame (after the RDataFrame versions
// in iris-hep/adl-benchmarks-index).
#pragma once
#include <ROOT/RVec.hxx>
#include <Math/Vector4D.h>
#include <cmath>
#include <limits>

namespace facility_adl {
using ROOT::RVecF;
using ROOT::RVecI;
using P4 = ROOT::Math::PtEtaPhiMVector;

inline bool has_os_pair_in_window(const RVecF &pt, const RVecF &eta, const RVecF &phi, const RVecF &m, const RVecI &q) {
  for (size_t i = 0; i < pt.size(); ++i)
    for (size_t j = i + 1; j < pt.size(); ++j) {
      if (q[i] == q[j]) continue;
      const double mass = (P4(pt[i], eta[i], phi[i], m[i]) + P4(pt[j], eta[j], phi[j], m[j])).M();
      if (mass > 60 && mass < 120) return true;
    }
  return false;
}

// pT of the trijet closest to the top mass, and the largest b-tag among its jets.
inline RVecF trijet(const RVecF &pt, const RVecF &eta, const RVecF &phi, const RVecF &m, const RVecF &btag) {
  double best = std::numeric_limits<double>::infinity();
  RVecF out{0, 0};
  for (size_t i = 0; i < pt.size(); ++i)
    for (size_t j = i + 1; j < pt.size(); ++j)
      for (size_t k = j + 1; k < pt.size(); ++k) {
        const auto p = P4(pt[i], eta[i], phi[i], m[i]) + P4(pt[j], eta[j], phi[j], m[j]) + P4(pt[k], eta[k], phi[k], m[k]);
        const double d = std::abs(p.M() - 172.5);
        if (d < best) { best = d; out = {float(p.Pt()), std::max({btag[i], btag[j], btag[k]})}; }
      }
  return out;
}

inline float isolated_jet_ht(const RVecF &jpt, const RVecF &jeta, const RVecF &jphi, const RVecF &mpt,
                             const RVecF &meta, const RVecF &mphi, const RVecF &ept, const RVecF &eeta, const RVecF &ephi) {
  float ht = 0;
  for (size_t j = 0; j < jpt.size(); ++j) {
    if (jpt[j] <= 30) continue;
    bool near = false;
    for (size_t l = 0; l < mpt.size() && !near; ++l)
      near = mpt[l] > 10 && std::hypot(jeta[j] - meta[l], ROOT::VecOps::DeltaPhi(jphi[j], mphi[l])) < 0.4;
    for (size_t l = 0; l < ept.size() && !near; ++l)
      near = ept[l] > 10 && std::hypot(jeta[j] - eeta[l], ROOT::VecOps::DeltaPhi(jphi[j], ephi[l])) < 0.4;
    if (!near) ht += jpt[j];
  }
  return ht;
}

// Transverse mass of MET and the leading lepton outside the SFOS pair closest to the Z mass;
// negative when the event has no such pair.
inline float z_lepton_mt(const RVecF &mpt, const RVecF &meta, const RVecF &mphi, const RVecF &mm, const RVecI &mq,
                         const RVecF &ept, const RVecF &eeta, const RVecF &ephi, const RVecF &em, const RVecI &eq,
                         float met, float met_phi) {
  RVecF pt = Concatenate(mpt, ept), eta = Concatenate(meta, eeta), phi = Concatenate(mphi, ephi), m = Concatenate(mm, em);
  RVecI q = Concatenate(mq, eq);
  const size_t nmu = mpt.size(), n = pt.size();
  if (n < 3) return -1;
  double best = std::numeric_limits<double>::infinity();
  int a = -1, b = -1;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      if ((i < nmu) != (j < nmu) || q[i] == q[j]) continue;
      const double d = std::abs((P4(pt[i], eta[i], phi[i], m[i]) + P4(pt[j], eta[j], phi[j], m[j])).M() - 91.2);
      if (d < best) { best = d; a = i; b = j; }
    }
  if (a < 0) return -1;
  int lead = -1;
  for (size_t i = 0; i < n; ++i)
    if (int(i) != a && int(i) != b && (lead < 0 || pt[i] > pt[lead])) lead = i;
  return std::sqrt(2 * pt[lead] * met * (1 - std::cos(ROOT::VecOps::DeltaPhi(phi[lead], met_phi))));
}
}  // namespace facility_adl
