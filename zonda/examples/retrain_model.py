"""Retrain a model: load data -> features -> train models in parallel -> evaluate -> keep the best.

    zonda trigger retrain_model --wait

Lesson: `.map()` fans out one task instance per element, known only at run time; mapping over a
mapped task pairs them one to one; a plain downstream task receives the list of results. Data
passes as return values (fitted models are pickled, plain metrics are JSON).
"""

from __future__ import annotations

from typing import Any

from zonda import dag, task


@task
def load_dataset() -> dict[str, Any]:
    """scikit-learn's bundled wine dataset (no download needed)."""
    from sklearn.datasets import load_wine

    data = load_wine()
    return {"X": data.data.tolist(), "y": data.target.tolist()}


@task
def build_features(dataset: dict[str, Any]) -> dict[str, Any]:
    """Standardise the features and split train/test."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test = train_test_split(
        dataset["X"], dataset["y"], test_size=0.3, random_state=0, stratify=dataset["y"]
    )
    scaler = StandardScaler().fit(x_train)
    return {
        "x_train": scaler.transform(x_train).tolist(),
        "x_test": scaler.transform(x_test).tolist(),
        "y_train": y_train,
        "y_test": y_test,
    }


@task
def candidate_models() -> list[dict[str, Any]]:
    """The grid to sweep; its length is only known when the run executes."""
    return [
        {"kind": "logistic_regression", "C": 0.1},
        {"kind": "logistic_regression", "C": 1.0},
        {"kind": "random_forest", "n_estimators": 50},
        {"kind": "gradient_boosting", "n_estimators": 50},
    ]


@task(retries=1)
def train(features: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """Fit one candidate; the fitted model travels on as a (pickled) return value."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    kind = candidate["kind"]
    options = {k: v for k, v in candidate.items() if k != "kind"}
    model: Any
    if kind == "logistic_regression":
        model = LogisticRegression(max_iter=500, **options)
    elif kind == "random_forest":
        model = RandomForestClassifier(random_state=0, **options)
    else:
        model = GradientBoostingClassifier(random_state=0, **options)
    model.fit(features["x_train"], features["y_train"])
    return {"candidate": candidate, "model": model}


@task
def evaluate(features: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    """Score one fitted model on the held-out split."""
    from sklearn.metrics import accuracy_score, f1_score

    predicted = trained["model"].predict(features["x_test"])
    return {
        "candidate": trained["candidate"],
        "accuracy": float(accuracy_score(features["y_test"], predicted)),
        "f1_macro": float(f1_score(features["y_test"], predicted, average="macro")),
    }


@task
def keep_best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pick the best candidate by macro F1; its metrics are the run's result."""
    best = max(results, key=lambda r: (r["f1_macro"], r["accuracy"]))
    print(f"best: {best['candidate']} f1={best['f1_macro']:.3f} accuracy={best['accuracy']:.3f}")
    return best


@dag(tags=["example", "ml"], owner="ml-platform", max_active_runs=1)
def retrain_model() -> None:
    """Sweep candidate models over the wine dataset and keep the best one."""
    features = build_features(load_dataset())
    trained = train.partial(features=features).map(candidate=candidate_models())
    scores = evaluate.partial(features=features).map(trained=trained)
    keep_best(scores)
