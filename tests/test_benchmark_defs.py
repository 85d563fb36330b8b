"""Benchmark definitions (components/benchmark_definitions/*.yaml, schema in components/benchmark_defs.py): shipped
ones load, expand and count right; bad ones are refused with a message that says what is wrong."""

import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # repo root; the package is not installed

from components import benchmark_defs as D  # noqa: E402
from components.evaluate import benchmarks as B  # noqa: E402

SHIPPED = {"sprites", "sugar_dreambench", "videomaker_human", "videomaker_object"}


def images_for(bench, root: Path) -> Path:
    for s in bench.subjects:
        (root / s.image).parent.mkdir(parents=True, exist_ok=True)
        (root / s.image).write_bytes(b"")  # expand only checks that the file is there
    return root


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_definition_loads(name):
    assert set(D.available_benchmarks()) == SHIPPED
    bench = B.load_benchmark(name)
    assert bench.name == name and bench.kind in D.KINDS and bench.metrics
    assert B.load_benchmark(D.definitions_dir() / f"{name}.yaml") == bench  # by path as well
    assert D.load_benchmark(name) == bench  # the shared schema alone builds the same benchmark


def test_sugar_protocol_shape(tmp_path):
    bench = B.load_benchmark("sugar_dreambench")
    assert bench.kind == "images" and bench.categories == ("animal", "active_object", "static_object")
    assert all(len(bench.prompts[c]) == 18 for c in bench.categories)
    assert len(bench.subjects) == 30 and len({s.id for s in bench.subjects}) == 30
    by_cat = {c: [s.id for s in bench.subjects if s.category == c] for c in bench.categories}
    assert len(by_cat["animal"]) == 9 and {"dog", "cat2"} <= set(by_cat["animal"])
    nouns = {s.id: s.class_noun for s in bench.subjects}  # DreamBench's prompts_and_classes.txt
    assert (nouns["bear_plushie"], nouns["pink_sunglasses"], nouns["berry_bowl"], nouns["rc_car"]) == \
        ("stuffed animal", "glasses", "bowl", "toy")
    assert bench.num_cases == 540
    assert set(bench.metrics) == {"dino_i", "clip_t", "text_video", "dynamic_degree", "subject_consistency",
                                  "background_consistency"}

    cases = B.expand(bench, images_for(bench, tmp_path))
    assert len(cases) == 30 * 18 == 540 and len({c.case_id for c in cases}) == 540
    for c in cases:
        assert c.class_noun in c.prompt and "{" not in c.prompt and "}" not in c.prompt
        assert not re.search(r"\bsks\b", c.prompt) and c.image.is_file() and c.image.parent.parent == tmp_path
    dog = [c.prompt for c in cases if c.subject_id == "dog"]
    assert len(dog) == 18 and dog[0] == "a dog running across a sunlit meadow"
    assert [c.subject_id for c in B.expand(bench, tmp_path, limit=30)] == [s.id for s in bench.subjects]


def test_videomaker_definitions_transcribe_the_seed_tables(tmp_path):
    human = B.load_benchmark("videomaker_human")
    (person,) = human.categories
    prompts = human.prompts[person]
    assert len(prompts) == 25
    groups = [p.group for p in prompts]
    assert {g: groups.count(g) for g in groups} == {"clothing": 5, "action": 5, "accessory": 5, "view": 5,
                                                     "background": 5}
    cases = B.expand(human, images_for(human, tmp_path / "h"))
    assert len(cases) == 16 * 25
    texts = {c.prompt for c in cases}
    assert "A person is enjoying a cup of coffee in a cozy café." in texts
    assert "A person swimming in the pool" in texts  # verbatim, missing full stop included

    obj = B.load_benchmark("videomaker_object")
    assert obj.categories == ("bear", "car", "cat", "dog", "elephant", "horse", "lion", "panda", "tiger")
    assert all(len(p) == 10 for p in obj.prompts.values()) and len(obj.subjects) == 18
    cases = B.expand(obj, images_for(obj, tmp_path / "o"))
    assert len(cases) == 18 * 10
    texts = {c.prompt for c in cases}
    assert {"An elephant crossing a river.", "A dog, a golden retriever, is seen bounding joyfully towards the camera.",
            "A tiger running on a plain.", "A car driving through a foggy forest road."} <= texts
    for c in cases:
        assert c.class_noun == c.category and c.class_noun in c.prompt and "{" not in c.prompt


def test_sprites_definition_expands_through_the_generator():
    from components.sprites import heldout_specs

    bench = B.load_benchmark("sprites")
    assert bench.kind == "sprites" and bench.sprites.generator == "components.sprites.heldout_specs"
    cases = B.expand(bench)
    assert len(cases) == bench.sprites.num_specs == bench.num_cases
    specs = heldout_specs(bench.sprites.seed, bench.sprites.num_specs)
    assert [c.prompt for c in cases] == [s.caption for s in specs]
    assert [c.category for c in cases[:3]] == ["animal", "active_object", "static_object"]
    assert all(c.image is None and c.spec is not None and c.class_noun in c.prompt for c in cases)
    assert len(B.expand(bench, limit=5)) == 5
    assert [c.case_id for c in B.expand(bench, n=4, seed=7)] == [s.sample_id for s in heldout_specs(7, 4)]


# --- bad definitions ------------------------------------------------------------------------------------

def base_definition() -> dict:
    return {"name": "mini", "kind": "images", "metrics": ["clip_t", "dino_i"],
            "categories": {"animal": {"prompts": ["a {class} running", "a {} swimming"]},
                           "static_object": {"prompts": {"motion": ["the {class} sliding"]}}},
            "subjects": [{"id": "dog", "class": "dog", "category": "animal", "image": "dog.jpg"},
                         {"id": "vase", "class": "vase", "category": "static_object", "image": "v/vase.png"}]}


def write(tmp_path, data) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_custom_definition_from_path(tmp_path):
    bench = B.load_benchmark(write(tmp_path, base_definition()))
    (tmp_path / "img" / "v").mkdir(parents=True)
    for f in ("dog.jpg", "v/vase.png"):
        (tmp_path / "img" / f).write_bytes(b"")
    cases = B.expand(bench, tmp_path / "img")
    assert [(c.case_id, c.prompt, c.group) for c in cases] == [
        ("dog__00", "a dog running", None), ("vase__00", "the vase sliding", "motion"), ("dog__01", "a dog swimming", None)]


def mutate(fn):
    data = base_definition()
    fn(data)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d["categories"]["animal"]["prompts"].append("a dog jumping"), "no class placeholder"),
    (lambda d: d["categories"]["animal"]["prompts"].append("a {clas} jumping"), "unknown placeholder"),
    (lambda d: d["categories"]["animal"]["prompts"].append("a sks {class} jumping"), "sks"),
    (lambda d: d["categories"]["animal"]["prompts"].append("a {class} running"), "duplicate prompt"),
    (lambda d: d["subjects"][1].update(category="static"), "unknown category 'static'"),
    (lambda d: d["subjects"][1].update(id="dog"), "duplicate subject id 'dog'"),
    (lambda d: d["subjects"][1].update(image="../vase.png"), "inside the images folder"),
    (lambda d: d["subjects"][1].pop("class"), "exactly the keys"),
    (lambda d: d.update(metrics=["clip_t", "face_sim"]), "unknown metric"),
    (lambda d: d.update(metrics=["sprites_motion"]), "unknown metric"),
    (lambda d: d.update(kind="video"), "kind must be one of"),
    (lambda d: d.update(prompt="x"), "unknown key"),
    (lambda d: d["categories"].update(person={"prompts": ["a {class} waving"]}), "no subjects"),
])
def test_bad_definitions_are_refused(tmp_path, change, message):
    with pytest.raises(B.BenchmarkError, match=re.escape(message)) as err:
        B.load_benchmark(write(tmp_path, mutate(change)))
    assert "mini.yaml" in str(err.value)  # the message says which file
    if message != "unknown metric":  # all but metric names are the shared schema's checks (config start-up too)
        with pytest.raises(D.BenchmarkError, match=re.escape(message)):
            D.load_benchmark(write(tmp_path, mutate(change)))


def test_unknown_name_missing_file_and_missing_images(tmp_path):
    with pytest.raises(B.BenchmarkError, match="available: sprites, sugar_dreambench, videomaker_human"):
        B.load_benchmark("dreambench")
    with pytest.raises(B.BenchmarkError, match="does not exist"):
        B.load_benchmark(tmp_path / "nope.yaml")
    bench = B.load_benchmark(write(tmp_path, base_definition()))
    with pytest.raises(B.BenchmarkError, match="evaluate.benchmark_images"):
        B.expand(bench)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "dog.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"v/vase\.png \(subject vase\)"):
        B.expand(bench, tmp_path / "img")
    assert len(B.expand(bench, tmp_path / "img", limit=1)) == 1  # only the cases' own images are needed
    with pytest.raises(FileNotFoundError, match="does not exist"):
        B.expand(bench, tmp_path / "elsewhere")


def test_bad_sprites_definition_refused(tmp_path):
    data = yaml.safe_load((D.definitions_dir() / "sprites.yaml").read_text())
    data["changes"] = ["colour", "sketch"]
    with pytest.raises(B.BenchmarkError, match="differ from the cycle the generator draws"):
        B.load_benchmark(write(tmp_path, data))
    data = yaml.safe_load((D.definitions_dir() / "sprites.yaml").read_text())
    data["motions"] = ["walk", "teleport"]
    with pytest.raises(B.BenchmarkError, match="teleport"):
        B.load_benchmark(write(tmp_path, data))
    data["motions"], data["generator"] = ["walk"], "components.sprites.no_such_function"
    with pytest.raises(B.BenchmarkError, match="cannot be imported"):
        B.load_benchmark(write(tmp_path, data))


@pytest.mark.parametrize("change, field, says", [
    (lambda d: d.update(prompt="x"), "'prompt'", "unknown key"),  # top level
    (lambda d: d["categories"]["animal"].update(promts=["a {class}"]), "'promts' in categories.animal", "unknown key"),
    (lambda d: d["subjects"][0].update(id=7), "subjects[0].id", "valid string"),
    (lambda d: d.update(metrics="clip_t"), "metrics", "valid list"),
    (lambda d: d["categories"]["animal"].update(prompts="a {class} running"), "categories.animal.prompts",
     "list of templates or a mapping"),
    (lambda d: d["categories"]["animal"]["prompts"].append(True), "categories.animal.prompts[2]: Input should be a "
     "valid string (got True)", ""),  # YAML's `- yes`: one problem, without pydantic's union branches
    (lambda d: d.pop("subjects"), "subjects", "required key missing"),
])
def test_unknown_keys_and_wrong_types_name_the_field(tmp_path, change, field, says):
    with pytest.raises(D.BenchmarkError) as err:
        D.load_benchmark(write(tmp_path, mutate(change)))
    text = str(err.value)
    assert text.startswith(str(tmp_path / "mini.yaml") + ": ") and field in text and says in text, text
    assert "ValidationError" not in text and "errors.pydantic.dev" not in text


def test_sprites_schema_is_strict(tmp_path):
    data = yaml.safe_load((D.definitions_dir() / "sprites.yaml").read_text())
    for key, value, says in [("num_specs", "24", "num_specs: Input should be a valid integer (got '24')"),
                             ("num_specs", True, "num_specs: Input should be a valid integer (got True)"),
                             ("num_specs", 0, "num_specs: Input should be greater than or equal to 1 (got 0)"),
                             ("seed", 1.5, "seed: Input should be a valid integer"),
                             ("generator", "heldout_specs", "not a 'module.function' name"),
                             ("kind", "video", "kind must be one of ('sprites', 'images'), got 'video'"),
                             ("subjects", [], "unknown key 'subjects' for a 'sprites' benchmark; allowed: [")]:
        with pytest.raises(D.BenchmarkError, match=re.escape(says)):
            D.load_benchmark(write(tmp_path, {**data, key: value}))


def test_the_shared_definitions_import_no_step():
    """components.benchmark_defs is shared (the config uses it at start-up): loading every shipped definition
    with it imports no step package, and no torch."""
    import subprocess

    code = """if True:
        import sys
        from components import benchmark_defs as D
        for name in D.available_benchmarks():
            D.load_benchmark(name)
        steps = {"synthesize", "validate", "train", "evaluate", "register", "export", "compare"}
        bad = sorted(m for m in sys.modules if m == "torch" or (m.startswith("components.") and m.split(".")[1] in steps))
        assert not bad, bad
    """
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
