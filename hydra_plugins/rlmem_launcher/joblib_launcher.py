"""``hydra/launcher=joblib``: hydra-joblib-launcher's launcher with rlmem.launchers.ReportErrorsMixin
(one error line for a failed job, after the other jobs have ended)."""

try:
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as _JoblibLauncher
except ImportError:  # not installed: pip install hydra-joblib-launcher (an rlmem dependency)
    _JoblibLauncher = None

if _JoblibLauncher is not None:
    from rlmem.launchers import ReportErrorsMixin

    class JoblibLauncher(ReportErrorsMixin, _JoblibLauncher):
        """Sweep jobs in joblib's worker processes, with :class:`rlmem.launchers.ReportErrorsMixin`."""
