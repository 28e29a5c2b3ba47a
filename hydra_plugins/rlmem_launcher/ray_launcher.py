"""``hydra/launcher=ray``: hydra-ray-launcher's launcher with rlmem.launchers.LocalRayMixin (a local
cluster on 127.0.0.1 only, one error line for a failed job). Hydra imports every module under
hydra_plugins when it starts, so this one imports neither Ray nor, without the extra, its launcher."""

try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as _RayLauncher
except ImportError:  # not installed: pip install 'rlmem[ray]' (rlmem's command line says so)
    _RayLauncher = None

if _RayLauncher is not None:
    from rlmem.launchers import LocalRayMixin

    class RayLauncher(LocalRayMixin, _RayLauncher):
        """hydra-ray-launcher's ``RayLauncher`` with :class:`rlmem.launchers.LocalRayMixin`."""
