"""rlmem's Hydra launchers; configs/hydra/launcher/*.yaml select them (see rlmem.launchers)."""
