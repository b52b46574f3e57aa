// The stop two-lepton selection under one systematic variation, for RDataFrame.
// Mirrors analysis_kernels.analyses.stop_2l and .systematics, variation by variation.
#pragma once
#include <ROOT/RVec.hxx>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include "lester_mt2_bisect_v7.h"

namespace facility_stop {
using ROOT::RVecB;
using ROOT::RVecF;
using ROOT::RVecI;

enum Kind { NOMINAL, JES, JER, EES, MES, PU, SCALE, LEPSF, BTAG };

inline uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

inline double hash_normal(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t state = 0;
  for (uint64_t key : {a, b, c}) state = splitmix(state ^ key);
  const double u1 = (double(splitmix(state) >> 11) + 0.5) / 9007199254740992.0;
  const double u2 = (double(splitmix(state + 1) >> 11) + 0.5) / 9007199254740992.0;
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

struct Result {
  RVecI codes;  // region * 3 + flavour, for every region the event is in
  ROOT::RVecD weights;
};

inline Result evaluate(int kind, int sign, int index, uint64_t event, float gen_weight, float pu, float pu_up,
                       float pu_down, const RVecF &lhe, float met_pt, float met_phi, const RVecF &e_pt,
                       const RVecF &e_eta, const RVecF &e_phi, const RVecF &e_mass, const RVecI &e_charge,
                       const RVecI &e_id, const RVecF &e_iso, const RVecF &m_pt, const RVecF &m_eta,
                       const RVecF &m_phi, const RVecF &m_mass, const RVecI &m_charge, const RVecB &m_id,
                       const RVecF &m_iso, const RVecF &j_pt0, const RVecF &j_eta, const RVecF &j_phi,
                       const RVecF &j_btag) {
  Result out;
  struct Lepton { double pt, eta, phi, mass; int charge; bool mu; };
  std::vector<Lepton> leptons;
  for (size_t i = 0; i < e_pt.size(); ++i)
    if (e_id[i] >= 3 && e_iso[i] < 0.15f) leptons.push_back({e_pt[i], e_eta[i], e_phi[i], e_mass[i], e_charge[i], false});
  for (size_t i = 0; i < m_pt.size(); ++i)
    if (m_id[i] && m_iso[i] < 0.15f) leptons.push_back({m_pt[i], m_eta[i], m_phi[i], m_mass[i], m_charge[i], true});
  if (leptons.size() != 2 || leptons[0].charge + leptons[1].charge != 0) return out;
  std::array<double, 2> l_pt0{leptons[0].pt, leptons[1].pt}, l_pt = l_pt0;
  if (kind == EES || kind == MES)
    for (int i = 0; i < 2; ++i)
      if (leptons[i].mu == (kind == MES)) l_pt[i] *= 1 + sign * (kind == EES ? 0.01 : 0.005);
  const size_t nj = j_pt0.size();
  std::vector<double> j_pt(j_pt0.begin(), j_pt0.end());
  for (size_t j = 0; j < nj; ++j) {
    if (kind == JES) {
      j_pt[j] *= 1 + sign * 0.005 * (1 + index % 5) * (1 + std::pow(std::abs(j_eta[j]) / 2.8, 1 + index % 3));
    } else if (kind == JER) {
      j_pt[j] *= std::max(1 + 0.02 * (1 + index % 3) * hash_normal(event, j, 1000 + index), 0.0);
    }
  }
  double met_x = met_pt * std::cos(met_phi), met_y = met_pt * std::sin(met_phi);
  for (size_t j = 0; j < nj; ++j) {
    const double d = j_pt[j] - j_pt0[j];
    met_x -= d * std::cos(j_phi[j]);
    met_y -= d * std::sin(j_phi[j]);
  }
  for (int i = 0; i < 2; ++i) {
    met_x -= (l_pt[i] - l_pt0[i]) * std::cos(leptons[i].phi);
    met_y -= (l_pt[i] - l_pt0[i]) * std::sin(leptons[i].phi);
  }
  double w = double(gen_weight) * double(kind == PU ? (sign > 0 ? pu_up : pu_down) : pu);
  for (int i = 0; i < 2; ++i) w *= 0.98 + (kind == LEPSF ? sign : 0) * 0.01 * (1 + 5.0 / l_pt[i]);
  if (kind == SCALE) w *= lhe[index];
  for (size_t j = 0; j < nj; ++j)
    if (j_btag[j] > 0.3f && std::abs(j_eta[j]) < 2.5f && j_pt[j] > 20) w *= 0.95 + (kind == BTAG ? 0.03 * sign : 0.0);

  int a = l_pt[0] >= l_pt[1] ? 0 : 1, b = 1 - a;  // leading, subleading
  const auto &la = leptons[a], &lb = leptons[b];
  const double met = std::hypot(met_x, met_y);
  ROOT::Math::PtEtaPhiMVector va(l_pt[a], la.eta, la.phi, la.mass), vb(l_pt[b], lb.eta, lb.phi, lb.mass);
  const double mll = (va + vb).M();
  int n_b = 0;
  double lead_jet = 0;
  std::vector<double> central;
  for (size_t j = 0; j < nj; ++j) {
    if (!(j_pt0[j] > 0 && std::abs(j_eta[j]) < 2.8f && j_pt[j] > 20)) continue;
    central.push_back(j_pt[j]);
    lead_jet = std::max(lead_jet, j_pt[j]);
    n_b += j_btag[j] > 0.3f && std::abs(j_eta[j]) < 2.5f;
  }
  std::sort(central.begin(), central.end(), std::greater<double>());
  double ht4 = 0;
  for (size_t j = 0; j < std::min<size_t>(4, central.size()); ++j) ht4 += central[j];
  const bool presel = l_pt[a] > (la.mu ? 4.0 : 4.5) && l_pt[b] > (lb.mu ? 4.0 : 4.5) && mll > 10;
  const double r2l = met / (l_pt[a] + l_pt[b]), r2l4j = met / (met + l_pt[a] + l_pt[b] + ht4);
  const bool four_body = presel && l_pt[a] < 25 && met > 250 && lead_jet > 150 && r2l > 12 && r2l4j > 0.44;
  const bool same_flavour = la.mu == lb.mu;
  const int flavour = !same_flavour ? 2 : (la.mu ? 1 : 0);
  const bool mt2_candidate = presel && n_b >= 1 && (!same_flavour || std::abs(mll - 91.1876) > 20);
  bool sr_mt2 = false;
  if (mt2_candidate) {
    const double mt2 = asymm_mt2_lester_bisect::get_mT2(la.mass, l_pt[a] * std::cos(la.phi), l_pt[a] * std::sin(la.phi),
                                                        lb.mass, l_pt[b] * std::cos(lb.phi), l_pt[b] * std::sin(lb.phi),
                                                        met_x, met_y, 0, 0, 0);
    sr_mt2 = mt2 > 110;
  }
  const bool regions[3] = {four_body && l_pt[b] < 10, four_body && l_pt[b] >= 10, sr_mt2};
  for (int r = 0; r < 3; ++r)
    if (regions[r]) { out.codes.push_back(r * 3 + flavour); out.weights.push_back(w); }
  return out;
}
}  // namespace facility_stop
