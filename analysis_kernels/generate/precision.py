"""NanoAOD's per-branch float precision, applied to the generated float32 branches.

CMS NanoAOD stores most float columns with a reduced mantissa: CMSSW's table producers pass
each value through ``MiniFloatConverter::reduceMantissaToNbitsRounding(x, precision)``
(DataFormats/Math/interface/libminifloat.h), ``precision`` set per column (-1: full). Kept at
full precision, generated floats have random low bits that no codec can squeeze, so the
benchmark files would compress unlike real ones. ``round_batch`` gives each generated branch
the precision real NanoAOD gives it (``mantissa_bits``) before it is written.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

FULL = 23  # float32 mantissa bits

# Mantissa bits used by each float32 branch of the real file
# /work/shared/data/nanoAOD_2015_CMS_Open_Data_ttbar.root (200 events): the maximum over the
# branch's values of 23 minus the trailing zero bits of the mantissa, 21-23 taken as full
# precision. Collections with very few entries there (FatJet: 2, GenJetAK8: 3) give lower
# bounds. Not measurable (no value with a non-zero mantissa): HTXS_Higgs_pt/y,
# btagWeight_DeepCSVB, FatJet_btagDeepB, FatJet_lsf3, FsrPhoton_*, Generator_binvar,
# Generator_xpdf1/2, LHEReweightingWeight, PSWeight, Jet_btagDeepB, Jet_btagDeepCvB/CvL,
# Jet_btagDeepFlavCvB/CvL/QG, Muon_softMva. tests/test_generate.py measures the file again.
_MEASURED = {
    1: "Pileup_pudensity",
    4: "Pileup_nTrueInt",
    6: """CorrT1METJet_muonSubtrFactor Electron_dxyErr Electron_dzErr Electron_energyErr
        FatJet_particleNet_ZvsQCD FatJet_rawFactor Jet_chEmEF Jet_chFPV0EF Jet_chHEF Jet_muEF
        Jet_muonSubtrFactor Jet_neEmEF Jet_neHEF Jet_rawFactor Jet_bRegRes Jet_cRegRes
        Muon_dxyErr Muon_dzErr Muon_ptErr Muon_tkRelIso Muon_tunepRelPt Photon_energyErr""",
    8: """Electron_dr03EcalRecHitSumEt Electron_dr03HcalDepth1TowerSumEt Electron_dr03TkSumPt
        Electron_dr03TkSumPtHEEP Electron_hoe Electron_jetPtRelv2 Electron_jetRelIso
        Electron_scEtOverPt FatJet_deepTagMD_H4qvsQCD FatJet_particleNetMD_Xbb GenPart_eta
        GenPart_mass GenPart_phi GenPart_pt GenVisTau_eta GenVisTau_mass GenVisTau_phi
        GenVisTau_pt Jet_btagDeepFlavB MET_covXX MET_covXY MET_covYY Muon_jetPtRelv2
        Muon_jetRelIso Photon_hoe SoftActivityJet_eta SoftActivityJet_phi Tau_leadTkDeltaEta
        Tau_leadTkDeltaPhi OtherPV_z PV_ndof PV_chi2 PV_score SV_chi2 SV_ndof""",
    9: """FatJet_btagDDCvBV2 FatJet_btagHbb FatJet_deepTagMD_HbbvsQCD FatJet_deepTagMD_TvsQCD
        FatJet_deepTagMD_ZHccvsQCD FatJet_particleNet_mass GenJetAK8_mass""",
    10: """CaloMET_phi CaloMET_pt CaloMET_sumEt ChsMET_phi ChsMET_pt ChsMET_sumEt
        CorrT1METJet_area CorrT1METJet_rawPt Electron_deltaEtaSC Electron_dxy Electron_dz
        Electron_eInvMinusPInv Electron_ip3d Electron_mass Electron_r9 Electron_sieie
        Electron_sip3d FatJet_area FatJet_btagCSVV2 FatJet_btagDDBvLV2 FatJet_btagDDCvLV2
        FatJet_deepTagMD_WvsQCD FatJet_deepTagMD_ZHbbvsQCD FatJet_deepTagMD_ZbbvsQCD
        FatJet_deepTagMD_ZvsQCD FatJet_deepTagMD_bbvsLight FatJet_deepTagMD_ccvsLight
        FatJet_deepTag_H FatJet_deepTag_QCD FatJet_deepTag_QCDothers FatJet_deepTag_TvsQCD
        FatJet_deepTag_WvsQCD FatJet_deepTag_ZvsQCD FatJet_mass FatJet_particleNetMD_QCD
        FatJet_particleNetMD_Xcc FatJet_particleNetMD_Xqq FatJet_particleNet_H4qvsQCD
        FatJet_particleNet_HbbvsQCD FatJet_particleNet_HccvsQCD FatJet_particleNet_QCD
        FatJet_particleNet_TvsQCD FatJet_particleNet_WvsQCD FatJet_pt FatJet_tau1 FatJet_tau2
        FatJet_tau3 GenJet_mass Jet_area Jet_btagCSVV2 Jet_mass Jet_pt Jet_puIdDisc Jet_qgl
        Jet_bRegCorr Jet_cRegCorr GenMET_phi GenMET_pt MET_MetUnclustEnUpDeltaX
        MET_MetUnclustEnUpDeltaY MET_significance MET_sumEt MET_sumPtUnclustered Muon_dxy
        Muon_dxybs Muon_dz Muon_ip3d Muon_mass Muon_sip3d Photon_mass Photon_mvaID
        Photon_mvaID_Fall17V1p1 Photon_r9 Photon_sieie PuppiMET_phiJERDown PuppiMET_phiJERUp
        PuppiMET_phiJESDown PuppiMET_phiJESUp PuppiMET_phiUnclusteredDown
        PuppiMET_phiUnclusteredUp PuppiMET_ptJERDown PuppiMET_ptJERUp PuppiMET_ptJESDown
        PuppiMET_ptJESUp PuppiMET_ptUnclusteredDown PuppiMET_ptUnclusteredUp PuppiMET_sumEt
        RawMET_phi RawMET_pt RawMET_sumEt RawPuppiMET_phi RawPuppiMET_pt RawPuppiMET_sumEt
        GenDressedLepton_mass GenIsolatedPhoton_mass SoftActivityJet_pt Tau_chargedIso Tau_dxy
        Tau_leadTkPtOverTauPt Tau_mass Tau_neutralIso Tau_photonsOutsideSignalCone Tau_puCorr
        Tau_rawIso Tau_rawIsodR03 Tau_rawMVAnewDM Tau_rawMVAoldDM Tau_rawMVAoldDMdR03 TkMET_phi
        TkMET_pt TkMET_sumEt PV_x PV_y SV_dlen SV_dlenSig SV_dxy SV_dxySig SV_pAngle
        MET_fiducialGenPhi MET_fiducialGenPt SV_mass SV_pt SV_x SV_y""",
    11: "GenJetAK8_phi",
    12: """CorrT1METJet_eta CorrT1METJet_phi DeepMETResolutionTune_phi DeepMETResponseTune_phi
        Electron_eta Electron_phi FatJet_eta FatJet_phi GenJetAK8_eta GenJet_eta GenJet_phi
        Jet_eta Jet_phi MET_phi Muon_eta Muon_phi Photon_eta Photon_phi PuppiMET_phi
        GenDressedLepton_eta GenDressedLepton_phi GenIsolatedPhoton_eta GenIsolatedPhoton_phi
        Tau_eta Tau_phi SV_eta SV_phi""",
    14: """Electron_mvaTTH Generator_scalePDF Generator_weight Generator_x1 Generator_x2
        LHEPdfWeight LHEScaleWeight LHEPart_pt LHEPart_eta LHEPart_phi LHEPart_mass
        LHEPart_incomingpz Muon_segmentComp Muon_mvaLowPt Muon_mvaTTH Tau_dz SV_z""",
    16: "PV_z",
    FULL: """btagWeight_CSVV2 DeepMETResolutionTune_pt DeepMETResponseTune_pt
        Electron_miniPFRelIso_all Electron_miniPFRelIso_chg Electron_mvaFall17V2Iso
        Electron_mvaFall17V2noIso Electron_pfRelIso03_all Electron_pfRelIso03_chg Electron_pt
        GenJetAK8_pt GenJet_pt genWeight LHEWeight_originalXWGTUP LHE_HT LHE_HTIncoming LHE_Vpt
        LHE_AlphaS MET_pt Muon_miniPFRelIso_all Muon_miniPFRelIso_chg Muon_pfRelIso03_all
        Muon_pfRelIso03_chg Muon_pfRelIso04_all Muon_pt Photon_pfRelIso03_all
        Photon_pfRelIso03_chg Photon_pt Pileup_gpudensity PuppiMET_pt fixedGridRhoFastjetAll
        fixedGridRhoFastjetCentral fixedGridRhoFastjetCentralCalo
        fixedGridRhoFastjetCentralChargedPileUp fixedGridRhoFastjetCentralNeutral
        GenDressedLepton_pt GenIsolatedPhoton_pt SoftActivityJetHT SoftActivityJetHT10
        SoftActivityJetHT2 SoftActivityJetHT5 Tau_pt""",
}
NANOAOD_BITS: dict[str, int] = {
    name: bits for bits, names in _MEASURED.items() for name in names.split()
}

# Generated branches named unlike their NanoAOD counterpart (the ADL file's Run 1 names).
ALIASES = {"MET_sumet": "MET_sumEt", "Jet_btag": "Jet_btagCSVV2"}
ETA_PHI_BITS = NANOAOD_BITS["Muon_eta"]  # every reconstructed eta and phi of the file: 12
MASS_BITS = NANOAOD_BITS["Jet_mass"]  # Jet, Muon, Electron, Tau masses: 10
JET_PT_BITS = NANOAOD_BITS["Jet_pt"]  # Jet, FatJet, SV, SoftActivityJet pT: 10


def mantissa_bits(branch: str) -> int:
    """Mantissa bits NanoAOD keeps for ``branch`` (23: full precision).

    The real file's measurement where it has the branch; otherwise the closest analogue by
    field name: NanoAOD-style (lower-case) ``_eta``/``_phi`` fields the file's eta/phi bits,
    ``_mass`` its mass bits, ``_pt`` of a jet-like collection its jet pT bits; anything else
    (extrapolations, segments, custom ntuple branches such as ``Triplet2_Mass``) full.
    """
    name = ALIASES.get(branch, branch)
    if name in NANOAOD_BITS:
        return NANOAOD_BITS[name]
    collection, _, field = name.partition("_")
    if field in ("eta", "phi"):
        return ETA_PHI_BITS
    if field == "mass":
        return MASS_BITS
    if field == "pt" and "Jet" in collection:
        return JET_PT_BITS
    return FULL


def reduce_mantissa(values, bits: int) -> np.ndarray:
    """float32 ``values`` rounded to ``bits`` mantissa bits, as CMSSW's
    ``MiniFloatConverter::reduceMantissaToNbitsRounding`` rounds them.

    On the bit pattern: when the highest dropped bit is set the kept mantissa goes up by one
    (round half away from zero in magnitude), then the dropped bits are cleared. As in CMSSW,
    the increment happens only while the kept mantissa is below ``2**bits - 2``: it never
    carries into the exponent (a value at the top of its binade is cut, not rounded up), so no
    finite value becomes infinite. Infinities are unchanged (their mantissa is zero); NaNs are
    returned unchanged (CMSSW could turn a NaN whose payload sits in the dropped bits into an
    infinity). Subnormals are rounded the same way.
    """
    array = np.asarray(values, dtype=np.float32)
    if bits >= FULL:
        return array
    if bits < 1:
        raise ValueError(f"mantissa bits must be 1 to {FULL}, not {bits}")
    shift = np.uint32(FULL - bits)
    u = array.view(np.uint32)
    kept = (u & np.uint32(0x007FFFFF)) >> shift
    up = ((u >> (shift - np.uint32(1))) & np.uint32(1)) & (kept < np.uint32((1 << bits) - 2))
    mask = np.uint32((0xFFFFFFFF << int(shift)) & 0xFFFFFFFF)
    rounded = (u & mask) + (up << shift)
    rounded = np.where(np.isnan(array), u, rounded)
    return rounded.astype(np.uint32).view(np.float32)


def _round_branch(name: str, array):
    bits = mantissa_bits(name)
    if bits >= FULL:
        return array
    if isinstance(array, ak.Array):
        if array.ndim == 1:
            flat = ak.to_numpy(array)
            return reduce_mantissa(flat, bits) if flat.dtype == np.float32 else array
        flat = ak.to_numpy(ak.flatten(array, axis=None))
        if flat.dtype != np.float32 or array.ndim != 2:
            return array
        return ak.unflatten(reduce_mantissa(flat, bits), ak.num(array, axis=1))
    array = np.asarray(array)
    return reduce_mantissa(array, bits) if array.dtype == np.float32 else array


def round_batch(batch: dict) -> dict:
    """The batch with every float32 branch rounded to ``mantissa_bits`` of its name.

    Collections (records whose fields are full branch names) are rebuilt field by field.
    Rounding is idempotent, so a value a generator rounded already stays as it is.
    """
    out = {}
    for name, array in batch.items():
        if isinstance(array, ak.Array) and array.fields:
            given = {f: array[f] for f in array.fields}
            fields = {f: _round_branch(f, a) for f, a in given.items()}
            if any(fields[f] is not given[f] for f in given):
                array = ak.zip(fields)
        else:
            array = _round_branch(name, array)
        out[name] = array
    return out
