"""The benchmark's dataset and split folder names, exactly as the published release spells them
(case- and hyphen-sensitive). Kept free of imports so the CLI can use them cheaply."""

DATASETS = ("BIG", "COIFT", "COD10K-v3", "MSD_Spleen", "ISTD", "SBU-shadow", "Flare7K", "Trans10K")
SPLITS = ("train", "val", "test")
FIT = "fit"              # the fit set's folder: the paper's SA-1B subset, or UncertSAM-mini's analogue
FIT_SOURCE = "SA-1B"     # the importer that writes a real fit set (uncertsam data import SA-1B)
