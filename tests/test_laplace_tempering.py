"""The tempered Laplace recipe (issue 18): the tempered posterior against direct formulas, the held-out
selection of its temperature, the untempered posterior derived from the same curvature, and the
temperature-scaled baseline."""

import math

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def predictor(nano_random):
    from uncertsam_utils.model import Predictor

    return Predictor(nano_random.model)


@pytest.fixture(scope="module")
def images():
    from uncertsam_utils.uq.laplace.features import synthetic_images

    return synthetic_images(6, 256, seed=2, objects=2)


@pytest.fixture(scope="module")
def tempered(nano_random, predictor, images):
    from uncertsam_utils.uq.laplace.fitting import fit_posterior

    return fit_posterior(nano_random, images[:4], recipe="tempered", val_data=images[4:], seed=0, progress=False,
                         predictor=predictor)


def _prompt(predictor, images):
    with torch.no_grad():
        out = predictor.decode(predictor.encode(images[5].image), boxes=torch.tensor([[30.0, 40.0, 180.0, 200.0]]),
                               return_internals=True)
    return out.h.reshape(1, -1).float(), out.U.reshape(1, *out.U.shape[-3:]).float()


@pytest.mark.parametrize("T", [1.0, 37.5])
def test_tempered_precision_marglik_and_logit_variance_follow_the_direct_formulas(tempered, predictor, images, T):
    la = tempered.la
    saved = la.temperature
    la.temperature = T
    try:
        _check_direct_formulas(tempered, predictor, images)
    finally:
        la.temperature = saved


def _check_direct_formulas(tempered, predictor, images):
    la = tempered.la
    T, tau = tempered.temperature, float(tempered.prior_precision)
    g = la.H.detach().double()
    precision = g / T + tau
    torch.testing.assert_close(la.posterior_precision.double(), precision, rtol=1e-6, atol=0)
    theta = la.mean.detach().double()
    direct = (-float(la.loss) / T - 0.5 * (torch.log(precision).sum() - g.numel() * math.log(tau)
                                           + tau * (theta * theta).sum()))
    assert float(la.log_marginal_likelihood()) == pytest.approx(float(direct), rel=1e-6)
    # z = W h + b: Var z_c = Σ_d h_d² / precision[W_cd] + 1 / precision[b_c]; v_p = Σ_c U_cp² Var z_c
    h, U = _prompt(predictor, images)
    C, D = U.shape[1], h.shape[1]
    variance = precision.reciprocal()
    var_z = variance[: C * D].reshape(C, D) @ (h[0].double() ** 2) + variance[C * D:]
    v = torch.einsum("c,cp->p", var_z, U[0].reshape(C, -1).double() ** 2).reshape(U.shape[-2:])
    torch.testing.assert_close(tempered.logit_variance(h, U)[0].double(), v, rtol=1e-4, atol=1e-12)


def test_the_temperature_is_the_minimum_of_the_heldout_nll_curve(tempered, predictor, images):
    from uncertsam_utils.uq.laplace.features import cached_features
    from uncertsam_utils.uq.laplace.tempering import laplace_nll, stacked

    selection = tempered.info["temperature_selection"]
    curve = selection["curve"]
    n_masks = tempered.info["prompts"] - tempered.info["skipped"]
    assert selection["n_masks"] == n_masks and curve[-1]["temperature"] == pytest.approx(1.0)  # T = 1 is a candidate
    assert selection["nll"] == min(p["nll"] for p in curve)
    assert tempered.temperature == pytest.approx(n_masks / selection["kappa"])
    assert [p["kappa"] for p in curve] == sorted(p["kappa"] for p in curve)
    heldout = stacked(cached_features(predictor, images[4:], objects="all", jitter=False).dataset.items)
    assert heldout["h"].shape[0] == selection["heldout_masks"] == 4  # every object of the held-out images
    assert float(laplace_nll(tempered.la, heldout).mean()) == pytest.approx(selection["nll"], rel=1e-6)
    untempered = selection["untempered_prior"]["prior_precision"]
    # the untempered search is kept in the report (the collapse it corrects); the same τ when T = 1 won
    assert (untempered == tempered.prior_precision.tolist()) == (tempered.temperature == 1.0)


def test_heldout_nll_is_the_bernoulli_nll_of_the_predictive_mean():
    from uncertsam_utils.uq.laplace.predictive import predictive_maps
    from uncertsam_utils.uq.laplace.tempering import mask_nll

    g = torch.Generator().manual_seed(0)
    mu = 3 * torch.randn(3, 8, 8, generator=g)
    var = 4 * torch.rand(3, 8, 8, generator=g)
    labels = (torch.rand(3, 8, 8, generator=g) < torch.sigmoid(mu)).float()
    _, logits, _ = predictive_maps(mu, var, maps=())
    samples = torch.sigmoid(mu + var.sqrt() * torch.randn(200_000, 3, 8, 8, generator=g)).double()
    p = samples.mean(0)
    direct = -(labels * torch.log(p) + (1 - labels) * torch.log1p(-p)).flatten(1).mean(1)
    torch.testing.assert_close(mask_nll(logits, labels).double(), direct, rtol=2e-3, atol=1e-4)
    confident = torch.full((1, 2, 2), 40.0)
    assert float(mask_nll(confident, torch.zeros(1, 2, 2))) == pytest.approx(16.1181, abs=1e-3)  # p̄ clamped to 1 − 1e-7


def test_the_logit_scale_recovers_a_known_temperature():
    from uncertsam_utils.uq.laplace.tempering import select_logit_scale

    g = torch.Generator().manual_seed(1)
    z = 5 * torch.randn(40, 32, 32, generator=g)
    labels = (torch.rand(z.shape, generator=g) < torch.sigmoid(z / 2.0)).float()
    report = select_logit_scale(z, labels)
    assert report["scale"] == pytest.approx(2.0, rel=0.05) and report["nll"] < report["unscaled_nll"]
    assert report["nll"] == min(p["nll"] for p in report["curve"])


def test_baseline_ts_divides_the_baselines_logits_by_the_selected_scale(tempered, predictor, images, nano_random):
    from uncertsam_utils.uq import make_method
    from uncertsam_utils.uq.laplace.fitting import fit_posterior

    scale = tempered.info["temperature_selection"]["logit_scale"]["scale"]
    method = make_method("baseline-ts", posterior=tempered)
    assert method.scale == scale and f"scale={scale!r}" in repr(method)
    boxes = np.array([[30.0, 40.0, 180.0, 200.0]])
    scaled = method.predict(predictor, images[5].image, boxes)
    plain = make_method("baseline").predict(predictor, images[5].image, boxes)
    torch.testing.assert_close(scaled.logits, plain.logits / scale, rtol=0, atol=0)
    assert torch.equal(scaled.logits > 0, plain.logits > 0)  # the same segmentation
    untempered = fit_posterior(nano_random, images[:2], recipe="untempered", progress=False, predictor=predictor)
    with pytest.raises(ValueError, match="tempered"):
        make_method("baseline-ts", posterior=untempered)


def test_the_untempered_posterior_is_derived_from_the_tempered_ones_curvature(tmp_path, monkeypatch, nano_random):
    from uncertsam_utils.data.mini import generate_fit
    from uncertsam_utils.evaluation import cache
    from uncertsam_utils.uq.laplace import LastLayerPosterior, fitting

    root = generate_fit(tmp_path / "data", seed=0, sizes=(3, 2, 1), progress=False, workers=1)
    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path / "one"))
    quiet = dict(progress=False, log=lambda _msg: None)
    tempered = LastLayerPosterior.load(cache.fit_posterior_cached(root, nano_random, "tempered", **quiet))
    fit = fitting.fit_posterior
    monkeypatch.setattr(fitting, "fit_posterior", lambda *a, **k: pytest.fail("derived without a pass over the data"))
    derived = LastLayerPosterior.load(cache.fit_posterior_cached(root, nano_random, "untempered", **quiet))
    monkeypatch.setattr(fitting, "fit_posterior", fit)
    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path / "two"))
    fitted = LastLayerPosterior.load(cache.fit_posterior_cached(root, nano_random, "untempered", **quiet))
    assert derived.recipe == fitted.recipe == "untempered" and derived.temperature == fitted.temperature == 1.0
    assert torch.equal(derived.la.H, fitted.la.H) and torch.equal(derived.la.H, tempered.la.H)
    torch.testing.assert_close(derived.prior_precision, fitted.prior_precision, rtol=1e-6, atol=0)
    assert tempered.info["temperature_selection"]["untempered_prior"]["prior_precision"] == pytest.approx(
        fitted.prior_precision.tolist(), rel=1e-6)
    assert "temperature_selection" not in derived.info and derived.info["derived_from"] == "tempered"


def test_heldout_metrics_of_the_recipes_and_the_scaled_baseline(tempered, predictor, images):
    from uncertsam_utils.uq.laplace.tempering import heldout_metrics, heldout_prompts, laplace_nll, mask_nll

    heldout = heldout_prompts(predictor, images[4:])
    assert list(heldout["image"]) == [0, 0, 1, 1]  # two objects per held-out image
    ours = heldout_metrics(heldout, tempered.la)
    np.testing.assert_allclose(ours["nll"], laplace_nll(tempered.la, heldout, chunk=3), rtol=1e-6)
    assert (ours["logit_sd"] > 0).all() and (ours["std"] > 0).all()
    scaled = heldout_metrics(heldout, tempered.la, predictive=False, scale=2.0)
    mu = tempered.la.model.pixel_logits(heldout["h"], heldout["U"]).detach()
    np.testing.assert_allclose(scaled["nll"], mask_nll(mu / 2.0, heldout["labels"]).numpy(), rtol=1e-6)
    brier = ((torch.sigmoid(mu / 2.0) - heldout["labels"]) ** 2).flatten(1).mean(1).numpy()
    np.testing.assert_allclose(scaled["brier"], brier, rtol=1e-5)
    assert not scaled["std"].any() and not scaled["logit_sd"].any()
