// Helpers of the Ds -> phi(mu mu) pi analysis, as declared in the seed's RDataFrame notebook.
#pragma once
#include <ROOT/RVec.hxx>
#include <limits>

namespace facility_ds {
using ROOT::RVecF;
using ROOT::RVecI;

// Index of each candidate's object in a collection, found by exact pT; -1 when absent.
inline RVecI match(const RVecF &collection_pt, const RVecF &candidate_pt) {
  RVecI index(candidate_pt.size(), -1);
  for (size_t i = 0; i < candidate_pt.size(); ++i)
    for (size_t j = 0; j < collection_pt.size(); ++j)
      if (collection_pt[j] == candidate_pt[i]) { index[i] = j; break; }
  return index;
}

// The collection's flag for each matched candidate object (false when unmatched).
template <typename Flags>
RVecI muon_id(const RVecI &index, const Flags &flag) {
  RVecI out(index.size(), 0);
  for (size_t i = 0; i < index.size(); ++i) out[i] = index[i] >= 0 && flag[index[i]];
  return out;
}

// The passing candidate with the smallest vertex chi2.
template <typename Mask>
int bestcandidate(const RVecF &chi2, const Mask &mask) {
  int best = -1;
  float lowest = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < chi2.size(); ++i)
    if (mask[i] && chi2[i] < lowest) { lowest = chi2[i]; best = i; }
  return best;
}
}  // namespace facility_ds
