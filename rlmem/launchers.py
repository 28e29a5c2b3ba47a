"""What rlmem adds to Hydra's launchers for sweeps past one process.

``-m hydra/launcher=ray`` (``configs/hydra/launcher/ray.yaml``) selects
``hydra_plugins.rlmem_launcher.ray_launcher.RayLauncher``: hydra-ray-launcher's launcher
(``pip install 'rlmem[ray]'``) with :class:`LocalRayMixin`, which changes two things:

- a local cluster (``ray.init.address: null``) whose ``ray.init._node_ip_address`` is a loopback
  address stays on it: Ray by itself swaps a loopback node address for the machine's own and then
  listens on every interface, so the launcher sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray's
  single-machine mode, in which every Ray process listens on 127.0.0.1 only) and
  ``RAY_USAGE_STATS_ENABLED=0`` before Ray starts, unless they are set already;
- a job that fails comes back as one line, ``error: <reason> (in the sweep job <overrides>)``, and
  the sweep exits with the code a single run would (2 for a bad config, 1 for a non-finite loss)
  once every job has ended, instead of a crashed worker and Ray's traceback.

``hydra/launcher=joblib`` (a dependency) and ``submitit_slurm`` / ``submitit_local``
(``pip install 'rlmem[slurm]'``), through ``configs/hydra/launcher/*.yaml`` of the same names, select
hydra-joblib-launcher's and hydra-submitit-launcher's launchers with :class:`ReportErrorsMixin`: the
second change only.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import traceback
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

#: Environment of a local cluster that stays on this machine (set unless already set).
LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def is_loopback(host: Any) -> bool:
    """True for ``localhost``, ``127.x.y.z`` and ``::1``."""
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class JobError(RuntimeError):
    """What a failed job sends back: the one-line message of a single run's error and the exit code
    a single run would have (``ConfigError``: 2, ``NonFiniteError``: 1, ``SystemExit``: its code).
    Plain to pickle, which the errors themselves may not be (``NonFiniteError`` is not)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code

    def __reduce__(self):
        return (JobError, (str(self), self.code))


class _ReportErrors:
    """The task function, run so that its errors come back to the driver as a :class:`JobError`
    instead of being printed in the job (rlmem's entry raises them with ``HYDRA_FULL_ERROR=1``),
    and a ``SystemExit`` does not take the worker down. ``HYDRA_FULL_ERROR=1`` set by the user:
    the job prints the traceback too."""

    def __init__(self, task_function: TaskFunction):
        self.task_function = task_function

    def __call__(self, cfg: DictConfig) -> Any:
        from rlmem.agents import NonFiniteError
        from rlmem.validation import ConfigError

        full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            return self.task_function(cfg)
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else 1
            if code == 0:
                return None
            raise JobError(f"the job exited with code {code}", code) from None
        except (ConfigError, NonFiniteError) as err:
            if full_error:
                traceback.print_exc()
            raise JobError(str(err), 2 if isinstance(err, ConfigError) else 1) from None
        finally:
            if not full_error:
                os.environ.pop("HYDRA_FULL_ERROR", None)


def report_failures(results: Sequence[JobReturn]) -> None:
    """Exit with one line, ``error: <message> (in the sweep job <its overrides>)``, and the job's
    exit code if a job failed with a :class:`JobError`; other failures are left to Hydra (which
    raises the job's exception)."""
    failed = [r for r in results if r.status == JobStatus.FAILED]
    if not failed or not isinstance(failed[0]._return_value, JobError):
        return
    err = failed[0]._return_value
    common = set.intersection(*(set(r.overrides) for r in results)) if len(results) > 1 else set()
    job = " ".join(o for o in failed[0].overrides if o not in common) or " ".join(failed[0].overrides)
    where = f"in the sweep job {job}"
    if len(failed) > 1:
        others = len(failed) - 1
        where += f"; {others} other job{'s' * (others > 1)} of {len(results)} failed too"
    print(f"error: {err} ({where})", file=sys.stderr, flush=True)
    sys.exit(err.code)


class ReportErrorsMixin:
    """Put before a Hydra launcher in a subclass's bases: a failed job's error comes back from the
    job as an exception and :func:`report_failures` turns it into one line and an exit code."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=_ReportErrors(task_function),  # type: ignore[misc]
                      config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        results = super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]
        report_failures(results)
        return results


class LocalRayMixin(ReportErrorsMixin):
    """Put before hydra-ray-launcher's ``RayLauncher`` in a subclass's bases (see the module's doc)."""

    def __init__(self, ray: DictConfig) -> None:
        super().__init__(ray=ray)  # type: ignore[call-arg]
        init = OmegaConf.to_container(ray.init, resolve=True) if ray.get("init") else {}
        self.local_loopback = init.get("address") in (None, "local") and is_loopback(init.get("_node_ip_address"))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if self.local_loopback:
            for key, value in LOCAL_RAY_ENV.items():
                os.environ.setdefault(key, value)
            if "ray" in sys.modules:  # imported before: its constants were read then
                from ray._private import ray_constants

                ray_constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] not in ("0", "false")
        if not sys.stderr.isatty():
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # plain "(_run_job pid=N)" prefixes in a log file
        return super().launch(job_overrides, initial_job_idx)
