// Drift-tube segment efficiency tag-and-probe, event by event, for RDataFrame.
#pragma once
#include <ROOT/RVec.hxx>
#include <Math/Vector4D.h>
#include <cmath>

namespace facility_dt {
using ROOT::RVecB;
using ROOT::RVecF;
using ROOT::RVecI;

struct Probes {
  RVecI chamber;  // ((wheel + 2) * 12 + sector - 1) * 4 + station - 1
  RVecI passed;
  RVecI fiducial;
  RVecF pt;
  RVecF eta;
  RVecF mass;  // tag-probe masses
};

inline float delta_r(float eta1, float phi1, float eta2, float phi2) {
  return std::hypot(eta1 - eta2, ROOT::VecOps::DeltaPhi(phi1, phi2));
}

inline Probes probes(bool hlt, const RVecF &pt, const RVecF &eta, const RVecF &phi, const RVecF &iso,
                     const RVecF &dz, const RVecI &charge, const RVecB &tight, const RVecI &strip,
                     const RVecI &pixel, const RVecF &trig_eta, const RVecF &trig_phi, const RVecI &trig_id,
                     const RVecI &trig_bits, const RVecI &x_muon, const RVecI &x_wheel, const RVecI &x_sector,
                     const RVecI &x_station, const RVecF &x_x, const RVecF &x_edge_x, const RVecF &x_edge_y,
                     const RVecI &s_wheel, const RVecI &s_sector, const RVecI &s_station, const RVecF &s_x) {
  const size_t n = pt.size();
  RVecB track_ok(n), tag(n), probe(n, false);
  for (size_t i = 0; i < n; ++i) {
    track_ok[i] = strip[i] >= 6 && pixel[i] >= 1 && iso[i] < 0.1f;
    bool matched = false;
    for (size_t t = 0; t < trig_eta.size(); ++t)
      if (trig_id[t] == 13 && (trig_bits[t] & 8) && delta_r(eta[i], phi[i], trig_eta[t], trig_phi[t]) < 0.1f) matched = true;
    tag[i] = track_ok[i] && tight[i] && pt[i] > 27 && matched && hlt;
  }
  Probes out;
  for (size_t t = 0; t < n; ++t)
    for (size_t p = 0; p < n; ++p) {
      if (t == p || !tag[t] || !track_ok[p] || pt[p] <= 20 || charge[t] * charge[p] >= 0) continue;
      if (delta_r(eta[t], phi[t], eta[p], phi[p]) <= 0.3f || std::abs(dz[t] - dz[p]) >= 0.1f) continue;
      ROOT::Math::PtEtaPhiMVector a(pt[t], eta[t], phi[t], 0.10566), b(pt[p], eta[p], phi[p], 0.10566);
      const double m = (a + b).M();
      if (std::abs(m - 91.1876) >= 10) continue;
      probe[p] = true;
      out.mass.push_back(m);
    }
  const size_t nx = x_muon.size();
  RVecB passed(nx, false);
  for (size_t e = 0; e < nx; ++e)
    for (size_t s = 0; s < s_x.size(); ++s)
      if (x_wheel[e] == s_wheel[s] && x_sector[e] == s_sector[s] && x_station[e] == s_station[s] &&
          std::abs(x_x[e] - s_x[s]) < 15.f) { passed[e] = true; break; }
  for (size_t e = 0; e < nx; ++e) {
    if (!probe[x_muon[e]]) continue;
    int others = 0;
    for (size_t f = 0; f < nx; ++f)
      others += x_muon[f] == x_muon[e] && x_station[f] != x_station[e] && passed[f];
    if (others < 2) continue;
    out.chamber.push_back(((x_wheel[e] + 2) * 12 + x_sector[e] - 1) * 4 + x_station[e] - 1);
    out.passed.push_back(passed[e]);
    out.fiducial.push_back(x_edge_x[e] > 15.f && x_edge_y[e] > 15.f);
    out.pt.push_back(pt[x_muon[e]]);
    out.eta.push_back(eta[x_muon[e]]);
  }
  return out;
}

// Values of a column for the probes that pass a selection (all or fiducial, passed or not).
template <typename T>
ROOT::RVec<T> pick(const ROOT::RVec<T> &v, const RVecI &fiducial, const RVecI &passed, bool only_fiducial, bool only_passed) {
  ROOT::RVec<T> out;
  for (size_t i = 0; i < v.size(); ++i)
    if ((!only_fiducial || fiducial[i]) && (!only_passed || passed[i])) out.push_back(v[i]);
  return out;
}
}  // namespace facility_dt
