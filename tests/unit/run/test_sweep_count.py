"""The sweep's job count comes from Hydra's basic sweeper, a private API: these tests fail
loudly when a Hydra upgrade moves or changes it (hydra-core is pinned in pyproject.toml)."""

from omegaconf import OmegaConf

from fdagmm.run.progress import count_jobs

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _config(target: str, task: list[str], params: dict | None = None):
    return OmegaConf.create({"hydra": {"sweeper": {"_target_": target, "params": params}, "overrides": {"task": task}}})


def test_the_private_sweeper_is_where_count_jobs_looks_for_it():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    assert f"{BasicSweeper.__module__}.{BasicSweeper.__name__}" == BASIC_SWEEPER
    assert callable(BasicSweeper.split_arguments)


def test_count_jobs_expands_the_sweep_as_hydra_does():
    assert count_jobs(_config(BASIC_SWEEPER, ["seed=0,1", "scenario=s1,s2,s3", "fed.rounds=5"])) == 6
    assert count_jobs(_config(BASIC_SWEEPER, ["seed=range(0,4)"], params={"method": "fdagmm,local"})) == 8
    assert count_jobs(_config(BASIC_SWEEPER, ["seed=0"])) == 1


def test_another_sweeper_counts_its_own_jobs():
    assert count_jobs(_config("hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", ["seed=0,1"])) is None
