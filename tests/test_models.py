"""Shapes and invariants of the plain networks (no Lightning)."""

from __future__ import annotations

import inspect

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch import nn

from sigid.models import (
    ConvClassifier,
    ConvEmbedding,
    EnsembleEmbedding,
    FusedEmbedding,
    PixelEmbedding,
    SiameseNetwork,
    SimilarityHead,
    build_classifier,
    build_embedding,
    build_siamese,
)


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_classifier_shapes_for_every_depth(depth: int) -> None:
    net = ConvClassifier(num_classes=7, depth=depth, channels=(4, 4, 8, 8, 8), image_size=(32, 32))
    x = torch.rand(3, 1, 32, 32)
    assert net(x).shape == (3, 7)
    assert net.features(x).shape == (3, 256)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == depth
    proba = net.predict_proba(x)
    assert torch.allclose(proba.sum(dim=1), torch.ones(3))


def test_classifier_paper_architecture() -> None:
    """128x128 input, 3 conv/pool blocks -> 16x16 maps, Dense 256, one output per writer."""
    net = ConvClassifier(num_classes=10)
    assert net.neck[1].in_features == 64 * 16 * 16
    assert net.neck[1].out_features == 256
    assert net(torch.rand(2, 1, 128, 128)).shape == (2, 10)


def test_the_classifiers_code_defaults_are_its_config():
    """sigid.models.ConvClassifier(...) from Python builds what `model=cnn` builds."""
    with initialize_config_module("sigid.conf", version_base="1.3"):
        cfg = compose("train", overrides=["model=cnn"])
    defaults = inspect.signature(ConvClassifier).parameters
    for key in ("depth", "channels", "hidden", "dropout", "batch_norm"):
        expected = OmegaConf.to_container(cfg.model)[key]
        got = defaults[key].default
        assert (list(got) if isinstance(got, tuple) else got) == expected, key


def test_classifier_non_square_and_batch_norm() -> None:
    net = ConvClassifier(5, depth=2, channels=(4, 8), image_size=(32, 64), batch_norm=True)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert net(torch.rand(2, 1, 32, 64)).shape == (2, 5)


@pytest.mark.parametrize("depth", [0, 1, 6])
def test_invalid_depth_raises(depth: int) -> None:
    with pytest.raises(ValueError, match="depth"):
        ConvClassifier(num_classes=3, depth=depth)
    with pytest.raises(ValueError, match="depth"):
        ConvEmbedding(depth=depth)


def test_image_too_small_or_too_few_channels_raises() -> None:
    with pytest.raises(ValueError, match="too small"):
        ConvClassifier(3, depth=5, image_size=(16, 16))
    with pytest.raises(ValueError, match="channel"):
        ConvClassifier(3, depth=4, channels=(8, 8))


def test_build_classifier() -> None:
    net = build_classifier(kind="cnn", num_classes=4, depth=2, channels=[4, 8], image_size=[32, 32])
    assert isinstance(net, ConvClassifier)
    with pytest.raises(ValueError, match="unknown classifier"):
        build_classifier(kind="resnet", num_classes=4)


def test_embeddings_shapes() -> None:
    x = torch.rand(5, 1, 32, 48)
    pixel = PixelEmbedding(image_size=(32, 48), dim=16)
    assert pixel(x).shape == (5, 16)
    assert (pixel(x) >= 0).all()  # the paper's ReLU embedding
    conv = ConvEmbedding(depth=3, channels=(4, 8, 8), image_size=(32, 48), dim=12)
    assert conv(x).shape == (5, 12)
    assert isinstance(build_embedding("pixel", image_size=(32, 48), dim=3), PixelEmbedding)
    with pytest.raises(ValueError, match="unknown embedding"):
        build_embedding("vit")


def test_normalized_embeddings_are_unit_length_and_keep_the_direction() -> None:
    torch.manual_seed(0)
    x = torch.rand(5, 1, 32, 48)
    for kind, extra in (("pixel", {}), ("conv", {"depth": 2, "channels": (4, 8)})):
        plain = build_embedding(kind, image_size=(32, 48), dim=12, **extra)
        unit = build_embedding(kind, image_size=(32, 48), dim=12, normalize=True, **extra)
        unit.load_state_dict(plain.state_dict())
        raw, normed = plain(x), unit(x)
        assert torch.allclose(normed.norm(dim=1), torch.ones(5), atol=1e-5)
        assert torch.allclose(normed * raw.norm(dim=1, keepdim=True), raw, atol=1e-5)


def test_writer_branch_appends_scaled_unit_writer_features() -> None:
    """The fused distance is sqrt(d_pair^2 + weight^2 d_writer^2), writer features unit-length."""
    torch.manual_seed(0)
    net = build_siamese(
        embedding="conv", depth=2, channels=[4, 8], image_size=[32, 48], dim=8,
        writer_branch={"weight": 3.0, "depth": 2, "channels": [4, 8], "hidden": 6},
    )  # fmt: skip
    fused = net.embedding
    assert isinstance(fused, FusedEmbedding) and fused.dim == 8 + 6
    x = torch.rand(4, 1, 32, 48)
    fused.eval()
    with torch.no_grad():
        pair, writer = fused.parts(x)
        out = fused(x)
        unit = writer / writer.norm(dim=1, keepdim=True)
        assert torch.allclose(out[:, :8], pair)
        assert torch.allclose(out[:, 8:], 3.0 * unit, atol=1e-6)
        d = net.distance(x, torch.tensor([0, 1]), torch.tensor([2, 3]))
        d_pair = (pair[[0, 1]] - pair[[2, 3]]).norm(dim=1)
        d_writer = (unit[[0, 1]] - unit[[2, 3]]).norm(dim=1)
    assert torch.allclose(d, (d_pair**2 + 9.0 * d_writer**2).sqrt(), atol=1e-5)
    # The pair loss cannot reach the writer branch: only its own loss trains it.
    fused.train()
    net(x, torch.tensor([0, 1]), torch.tensor([2, 3])).sum().backward()
    assert all(p.grad is None for p in fused.writer.parameters())
    assert all(p.grad is not None for p in fused.pair.parameters())
    with pytest.raises(ValueError, match="weight"):
        build_siamese(embedding="conv", depth=2, channels=[4, 8], writer_branch={"weight": 0})


def test_similarity_head() -> None:
    head = SimilarityHead(scale=2.0, offset=4.0)
    assert float(head.scale.detach()) == pytest.approx(2.0)
    sims = head(torch.tensor([0.0, 1.0, 2.0, 10.0]))
    assert sims[0] > 0.95
    assert (sims.diff() < 0).all()
    assert sims[-1] < 1e-6
    with torch.no_grad():
        head.raw_scale.fill_(-50.0)
    assert float(head.scale.detach()) > 0  # softplus keeps similarity decreasing in distance
    with pytest.raises(ValueError):
        SimilarityHead(scale=0.0)


def _siamese() -> SiameseNetwork:
    torch.manual_seed(0)
    return build_siamese(embedding="conv", depth=2, channels=[4, 8], image_size=[32, 32], dim=8)


def test_identical_images_are_similar_and_gradient_is_finite() -> None:
    net = _siamese().eval()
    a = torch.rand(4, 1, 32, 32, requires_grad=True)
    sims = net.compare(a, a)
    assert sims.shape == (4,)
    assert (sims > 0.95).all()
    sims.sum().backward()
    assert torch.isfinite(a.grad).all()
    idx = torch.arange(4)
    assert net.distance(a, idx, idx).max() < 1e-3


def test_distance_is_euclidean() -> None:
    net = _siamese().eval()
    images = torch.rand(3, 1, 32, 32)
    left, right = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])
    emb = net.embed(images)
    expected = torch.cdist(emb, emb)[left, right]
    assert torch.allclose(net.distance(images, left, right), expected, atol=1e-4)
    assert torch.allclose(net(images, left, right), net.head(expected), atol=1e-4)


def test_each_distinct_image_is_embedded_once() -> None:
    net = build_siamese(embedding="pixel", image_size=[32, 32], dim=8)
    calls: list[int] = []
    net.embedding.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    images = torch.rand(4, 1, 32, 32)
    left = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 2, 1])
    right = torch.tensor([1, 2, 3, 2, 3, 3, 0, 1, 0, 0])
    assert net(images, left, right).shape == (10,)
    assert calls == [4]


def test_compare_rejects_mismatched_batches() -> None:
    net = _siamese()
    with pytest.raises(ValueError):
        net.compare(torch.rand(2, 1, 32, 32), torch.rand(3, 1, 32, 32))


def test_build_siamese_head_config() -> None:
    net = build_siamese(
        embedding="pixel", image_size=[16, 16], dim=4, head={"scale": 3.0, "offset": 5.0}
    )
    assert isinstance(net.embedding, PixelEmbedding)
    assert float(net.head.scale.detach()) == pytest.approx(3.0)
    assert float(net.head.offset.detach()) == pytest.approx(5.0)


def test_an_ensemble_scores_the_members_mean_squared_distance() -> None:
    torch.manual_seed(0)
    single = build_siamese(embedding="conv", depth=2, channels=[4, 8], image_size=[16, 16], dim=4)
    torch.manual_seed(0)
    net = build_siamese(
        embedding="conv", depth=2, channels=[4, 8], image_size=[16, 16], dim=4, members=3
    )
    ensemble = net.embedding
    assert isinstance(ensemble, EnsembleEmbedding) and ensemble.dim == 12
    # the first member starts as the single embedding would with the same seed; the others
    # from their own draws
    first, second = ensemble.members[0].state_dict(), ensemble.members[1].state_dict()
    assert all(torch.equal(first[k], v) for k, v in single.embedding.state_dict().items())
    assert not torch.equal(first["project.2.weight"], second["project.2.weight"])
    net.eval()
    a, b = torch.rand(5, 1, 16, 16), torch.rand(5, 1, 16, 16)
    ea, eb = ensemble(a), ensemble(b)
    members = [(m(a) - m(b)).pow(2).sum(-1) for m in ensemble.members]
    expected = torch.stack(members).mean(0).sqrt()
    assert torch.allclose((ea - eb).norm(dim=-1), expected, atol=1e-5)


def test_ensemble_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="members must be >= 1"):
        build_siamese(embedding="pixel", image_size=[8, 8], dim=4, members=0)
    with pytest.raises(ValueError, match="cannot be combined"):
        build_siamese(
            embedding="conv", image_size=[16, 16], depth=2, channels=[4, 8], dim=4, members=2,
            writer_branch={"depth": 2, "channels": [4, 8], "hidden": 4},
        )  # fmt: skip
    with pytest.raises(ValueError, match="at least 2 members"):
        EnsembleEmbedding([PixelEmbedding((8, 8), 4)])
