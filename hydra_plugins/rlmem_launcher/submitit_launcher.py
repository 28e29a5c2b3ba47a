"""``hydra/launcher=submitit_slurm`` / ``submitit_local``: hydra-submitit-launcher's launchers with
rlmem.launchers.ReportErrorsMixin (one error line for a failed job). Hydra imports every module
under hydra_plugins when it starts, so this one imports nothing of submitit."""

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _submitit
except ImportError:  # not installed: pip install 'rlmem[slurm]' (rlmem's command line says so)
    _submitit = None

if _submitit is not None:
    from rlmem.launchers import ReportErrorsMixin

    class SlurmLauncher(ReportErrorsMixin, _submitit.SlurmLauncher):
        """One SLURM job per sweep job (submitit), with :class:`rlmem.launchers.ReportErrorsMixin`."""

    class LocalLauncher(ReportErrorsMixin, _submitit.LocalLauncher):
        """submitit's local executor (a process per job here), with the same error reports."""
