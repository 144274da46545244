import pytest

from segmentation.config import JobConfig, load_config, parse_override
from segmentation.errors import InputError


def test_defaults_and_shipped_configs_load(tmp_path):
    assert load_config(None) == JobConfig()
    local = load_config("conf/local.yaml")
    assert local.input.features == ("age", "annual_income", "spending", "purchase_frequency")
    assert local.spark.properties["spark.scheduler.mode"] == "FAIR"
    cluster = load_config("conf/cluster.yaml")
    assert cluster.elbow.parallelism > local.elbow.parallelism


def test_overrides_reach_nested_keys_and_spark_properties():
    config = load_config(
        "conf/local.yaml",
        {
            "k.max": 6,
            "input.features": "Annual Income (k$), Spending Score (1-100)",
            "spark.properties.spark.sql.shuffle.partitions": 3,
            "elbow.sample_rows": None,
        },
    )
    assert config.k.max == 6
    assert config.input.features == ("Annual Income (k$)", "Spending Score (1-100)")
    assert config.spark.properties["spark.sql.shuffle.partitions"] == "3"
    assert config.elbow.sample_rows is None


def test_parse_override_reads_yaml_values():
    assert parse_override("elbow.parallelism=8") == ("elbow.parallelism", 8)
    assert parse_override("report.enabled=false") == ("report.enabled", False)
    assert parse_override("input.path=s3a://b/x") == ("input.path", "s3a://b/x")
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_override("novalue")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"k.min": 1}, "k.min must be at least 2, got 1"),
        ({"k.min": 6, "k.max": 4}, r"k.min \(6\) must not exceed k.max \(4\)"),
        ({"k.fixed": 12}, r"k.fixed \(12\) must lie within"),
        ({"elbow.paralelism": 2}, "unknown config key elbow.paralelism; did you mean elbow.parallelism"),
        ({"k.max": "ten"}, "k.max must be a whole number, got 'ten'"),
        ({"report.enabled": "yes"}, "report.enabled must be true or false"),
        ({"input.format": "xlsx"}, "input.format must be one of parquet, csv, json, table"),
        ({"input.duplicate_ids": "last"}, "input.duplicate_ids must be one of fail, keep_first, aggregate, got 'last'"),
        ({"input.invalid_values": "zero"}, "input.invalid_values must be one of drop, impute_median, fail"),
        ({"input.zero_variance": "keep"}, "input.zero_variance must be one of error, drop"),
        ({"input.features": "a,b,a"}, "more than once: a"),
        ({"input.features": "a`b"}, "contains a backtick"),
        ({"input.id_col": "age"}, "also listed as a feature"),
        ({"elbow.seeds_per_k": 0}, "elbow.seeds_per_k must be at least 1"),
        ({"elbow.init_mode": "kmeans++"}, r"elbow.init_mode must be one of k-means\|\|, random"),
        ({"elbow.init_steps": 0}, "elbow.init_steps must be at least 1"),
        ({"elbow.engine": "numpy"}, "elbow.engine must be one of auto, tasks, spark_ml, got 'numpy'"),
        ({"elbow.engine": "tasks", "algorithm": "gmm"}, "elbow.engine tasks runs kmeans only; algorithm gmm"),
        ({"elbow.task_seeds_per_k": 0}, "elbow.task_seeds_per_k must be at least 1"),
        ({"algorithm": "dbscan"}, "algorithm must be one of kmeans, bisecting, gmm, got 'dbscan'"),
    ],
)
def test_bad_config_is_an_input_error_naming_the_key(overrides, message):
    with pytest.raises(InputError, match=message):
        load_config(None, overrides)


def test_config_file_problems(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("k: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(str(bad))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("elbo:\n  parallelism: 2\n")
    with pytest.raises(InputError, match="unknown config key elbo; did you mean elbow"):
        load_config(str(unknown))


def test_a_transform_set_on_the_command_line_fills_the_shipped_configs_null_section():
    # conf/local.yaml says "transforms: null" (the kind's defaults); the README's --set must still work.
    overrides = dict(parse_override(t) for t in (
        "input.features=Genre,Age",
        "input.transforms.Genre=[one_hot]",
        "input.transforms.Age=[clip(0.01, 0.99)]",
    ))
    config = load_config("conf/local.yaml", overrides)
    assert config.input.transforms == {"Genre": ("one_hot",), "Age": ("clip(0.01, 0.99)",)}
    with pytest.raises(InputError, match="config key k.max.x: max is not a section"):
        load_config("conf/local.yaml", {"k.max.x": 1})
