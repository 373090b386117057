"""Scale normalisation (m2unet.data.scale): the FOV frame, resizing there and back, the scale a model runs at."""

from __future__ import annotations

import numpy as np
import pytest

from m2unet.data.scale import (
    DiameterSearch,
    describe_scale,
    fov_box,
    fov_diameter,
    model_scale,
    predict_scaled,
    resize_plane,
    run_frame,
    scale_frame,
    scale_record,
    self_consistency,
    shrink_by_max,
    window_frame,
)


def disc(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_box_and_diameter_of_a_disc_cut_at_top_and_bottom():
    mask = disc((300, 500), (150, 250), 200)  # like HRF: the disc is wider than the frame is high
    assert fov_box(mask) == (0, 50, 300, 401)
    assert fov_diameter(mask) == 401
    assert fov_box(np.zeros((20, 30), bool)) == (0, 0, 20, 30)


@pytest.mark.parametrize("frame,centre", [((700, 800), (350, 400)), ((600, 640), (330, 300)), ((760, 760), (300, 380))])
def test_the_diameter_of_a_disc_cut_on_every_side_is_fitted_to_its_arcs(frame, centre):
    mask = disc(frame, centre, 420)  # diameter 841, more than the frame on both axes; only corner arcs show
    assert max(fov_box(mask)[2:]) <= 800  # the frame's side: all the box can say
    assert fov_diameter(mask) == pytest.approx(841, abs=4)


def test_no_fit_where_the_frame_is_all_fov_and_a_notch_does_not_move_the_fit():
    assert fov_diameter(np.ones((300, 400), bool)) == 400  # no border visible: the frame's side
    assert fov_diameter(disc((300, 300), (150, 150), 150)) == 300  # touches all four edges: the fit agrees with the box
    notched = disc((700, 800), (350, 400), 420)
    notched[60:120, 60:120] = False  # a dark notch at one corner arc (an eyelash's shadow): left out of the fit
    assert fov_diameter(notched) == pytest.approx(841, abs=6)


def test_the_estimated_fov_of_a_tightly_framed_photograph_gives_its_diameter():
    from pathlib import Path

    from m2unet.data import estimate_fov_mask, read_image

    image = read_image(Path(__file__).resolve().parents[1] / "examples" / "chase_db1_Image_11L.jpg")
    whole = fov_diameter(estimate_fov_mask(image))  # 921
    for side in (800, 700):  # a camera that frames the same eye tighter: the FOV cut on all four sides
        cut = image[480 - side // 2 : 480 + side // 2, 490 - side // 2 : 490 + side // 2]
        assert fov_diameter(estimate_fov_mask(cut)) == pytest.approx(whole, rel=0.03)

def test_frame_shrinks_the_fov_to_the_diameter_and_maps_back_onto_the_photograph():
    mask = disc((700, 900), (350, 450), 320)  # diameter 641
    frame = scale_frame(mask, 320)
    assert frame.scale == pytest.approx(320 / 641)
    top, left, height, width = frame.box
    assert top <= 30 and left <= 130 and top + height >= 670 and left + width >= 770  # the FOV box, plus a margin
    assert frame.size == (round(height * frame.scale), round(width * frame.scale))
    small = frame.to_model(mask.astype(np.float32))
    assert fov_diameter(small >= 0.5) == pytest.approx(320, abs=2)
    back = frame.to_image(small) >= 0.5
    assert back.shape == mask.shape
    assert np.count_nonzero(back ^ mask) / np.count_nonzero(mask) < 0.01
    assert not back[:, :100].any()  # 0 outside the box


def test_scale_near_one_and_enlargement_limits():
    mask = disc((560, 560), (280, 280), 269)  # diameter 539
    assert scale_frame(mask, 538).identity  # within the tolerance: the photograph as it is, not even cropped
    assert run_frame(mask, (0, 1024)).identity  # shrink only: enlarging not allowed
    frame = scale_frame(mask, 1024)
    assert frame.scale == pytest.approx(1024 / 539) and max(frame.size) > 1024
    assert run_frame(mask, (674, 1024)).scale == pytest.approx(674 / 539)  # enlarged to the bottom of the range (1.25×)


def test_shrinking_is_antialiased_so_a_thin_line_fades_instead_of_vanishing():
    plane = np.zeros((400, 400), np.float32)
    plane[:, 201] = 1.0  # one pixel wide
    small = resize_plane(plane, (100, 100))
    assert small.sum() == pytest.approx(plane.sum() / 16, rel=0.05)  # the mass of the line is kept (area mean)
    assert 0.15 < small.max() < 0.4


def test_shrinking_by_max_keeps_a_line_thinner_than_the_new_pixels_at_full_strength():
    plane = np.zeros((190, 190), np.float32)
    plane[:, 77] = 0.9  # one model pixel wide; 1.9 model pixels per new pixel
    small = shrink_by_max(plane, (100, 100))
    assert small.shape == (100, 100)
    assert small.max() == pytest.approx(0.9) and np.count_nonzero(small.max(axis=0)) == 1  # one column, not widened
    assert resize_plane(plane, (100, 100)).max() < 0.6  # the mean dilutes it
    ramp = np.arange(7 * 10, dtype=np.float32).reshape(7, 10)
    assert shrink_by_max(ramp, (3, 4)).tolist() == [[11, 14, 16, 19], [41, 44, 46, 49], [61, 64, 66, 69]]  # centres owned once
    with pytest.raises(ValueError, match="shrinks"):
        shrink_by_max(plane, (200, 100))


@pytest.mark.parametrize("diameter,max_from,by_max", [(1024, 1.5, True), (640, 1.5, False), (1024, 2.85, False)])
def test_a_map_comes_back_by_max_from_the_models_enlargement_on(diameter, max_from, by_max):
    mask = disc((560, 560), (280, 280), 269)  # diameter 539: enlarged 1.9× to 1024 px, 1.19× to 640
    frame = scale_frame(mask, diameter)
    vessel = np.zeros(frame.size, np.float32)
    vessel[:, frame.size[1] // 2] = 1.0  # a vessel one model pixel wide
    back = frame.to_image(vessel, max_from)
    if by_max:  # at full strength, one photograph pixel wide
        assert back.max() == pytest.approx(1.0) and np.count_nonzero(back.max(axis=0)) == 1
    else:  # the mean, as everywhere else: a vessel thinner than the photograph's pixel fades
        assert 0.3 < back.max() < 0.95


def test_the_maximum_starts_beyond_the_coarsest_labels_a_model_learnt():
    from m2unet.data.datasets import FOV_DIAMETER
    from m2unet.data.scale import MAX_BACK_ENLARGEMENT, back_max_from

    universal = back_max_from({"fov_diameter": 1024, "datasets": ["drive", "chase_db1", "hrf"]})
    assert universal == pytest.approx(MAX_BACK_ENLARGEMENT * 1024 / FOV_DIAMETER["drive"])  # ~2.86: DRIVE-size runs by the mean
    without_drive = back_max_from({"fov_diameter": 1024, "datasets": ["chase_db1", "hrf"]})
    assert without_drive < 1024 / FOV_DIAMETER["drive"] < universal  # DRIVE's photographs come back by the maximum
    assert back_max_from({"dataset": "drive"}) == back_max_from({}) == MAX_BACK_ENLARGEMENT  # no scale stored
    # a run that compared DRIVE's labels as 2×2 blocks learnt them at 1024 / 2 px: CHASE_DB1's are the coarsest then
    pooled = back_max_from({"fov_diameter": 1024, "datasets": ["drive", "chase_db1", "hrf"], "pool_coarse_labels": True})
    assert pooled == pytest.approx(MAX_BACK_ENLARGEMENT * 1024 / FOV_DIAMETER["chase_db1"]) == without_drive


def test_label_pool_is_the_rounded_enlargement_from_the_maximums_limit():
    from m2unet.data.scale import label_pool

    assert label_pool(1024, 538) == 2 and label_pool(1024, 340) == 3  # DRIVE at 1024 px: 1.9x
    assert label_pool(1024, 921) == 1 and label_pool(1024, 3263) == 1  # CHASE_DB1 1.11x, HRF shrunk
    assert label_pool(1024, 690) == 1 and label_pool(1024, 680) == 2  # 1.48x and 1.51x either side of the limit


def test_the_scale_a_model_runs_at_comes_from_its_metadata():
    assert model_scale({"fov_diameter": 1024, "dataset": "drive+chase_db1+hrf"}) == (1024, 1024)
    assert model_scale({"fov_diameter": 1024, "run_fov_diameter": [1280, 1536]}) == (1280, 1536)
    assert model_scale({"dataset": "drive"}) == (0, 538)  # shrink only
    assert model_scale({"dataset": "hrf"})[1] == 3263
    assert model_scale({"source": "authors"}) is None and model_scale({"dataset": "my_folder"}) is None


def test_predict_scaled_runs_the_model_at_the_diameter():
    mask = disc((600, 800), (300, 400), 290)
    image = np.repeat(mask[..., None], 3, axis=2).astype(np.float32)
    seen = []

    def predict(view):
        seen.append(view.shape)
        return view[..., 0]

    probability = predict_scaled(predict, image, mask, (290, 290))
    assert max(seen[-1][:2]) == pytest.approx(290 * 1.04, abs=4)  # the FOV (581 px) halved, plus the margin
    assert probability.shape == mask.shape
    assert np.count_nonzero((probability >= 0.5) ^ mask) / np.count_nonzero(mask) < 0.01
    assert predict_scaled(predict, image, None, (290, 290)) is not None and seen[-1] == image.shape  # no mask: as it is


def test_a_photograph_runs_at_its_own_diameter_inside_the_range_and_at_the_nearest_end_outside():
    mask = disc((600, 800), (300, 400), 290)  # FOV 581 px across
    seen = []

    def predict(view):
        seen.append(view.shape)
        return view[..., 0]

    image = np.repeat(mask[..., None], 3, axis=2).astype(np.float32)
    predict_scaled(predict, image, mask, (400, 800))
    assert seen[-1] == image.shape  # inside the range: the photograph as it is, not even cropped
    for scale, expected in [((700, 900), 700 * 1.04), ((200, 300), 300 * 1.04), ((0, 538), 538 * 1.04)]:
        predict_scaled(predict, image, mask, scale)
        assert max(seen[-1][:2]) == pytest.approx(expected, abs=5), scale


def test_a_width_rule_runs_the_photograph_again_where_its_map_has_the_trained_width():
    from m2unet.data.scale import WidthRule

    mask = disc((600, 800), (300, 400), 290)  # FOV 581 px across
    stripes = (np.arange(800) % 40 < 4)[None, :] & mask  # vessels 4 px wide at the photograph's resolution
    image = np.repeat(stripes[..., None], 3, axis=2).astype(np.float32)
    seen = []

    def predict(view):
        seen.append(view.shape)
        return view[..., 0]

    rule = WidthRule(probe=290, map_width=6.0, limits=(145, 1000), threshold=0.5)
    width, measured_at, _, _ = rule.probe_map(predict, image, mask)
    assert width == pytest.approx(2.0, abs=0.3) and measured_at == pytest.approx(290, abs=1)  # halved with the FOV
    assert rule.diameter_for(width, measured_at) == pytest.approx(870, rel=0.15)  # where they would be 6 px wide
    seen.clear()
    probability = predict_scaled(predict, image, mask, rule)
    assert len(seen) == 2 and max(seen[1][:2]) == pytest.approx(rule.diameter_for(width, measured_at) * 1.04, abs=5)
    assert probability.shape == mask.shape and np.count_nonzero((probability >= 0.5) ^ stripes) / np.count_nonzero(stripes) < 0.1
    assert WidthRule(290, 6.0, (145, 600), 0.5).diameter_for(width, measured_at) == 600  # clamped to the limits
    seen.clear()
    predict_scaled(predict, image, mask, WidthRule(290, 2.0, (145, 1000), 0.5))  # already at the width: one pass only
    assert len(seen) == 1
    metadata = {"threshold": 0.4, "run_vessel_width": {"probe": 1024, "map_width": 5.5, "limits": [512, 2560]}, "run_fov_diameter": [1024, 1792]}
    rule = model_scale(metadata)
    assert rule == WidthRule(1024, 5.5, (512, 2560), 0.4)  # the width rule wins over FOV diameters
    assert scale_record(rule) == metadata["run_vessel_width"] and scale_record((1024, 1792)) == [1024, 1792] and scale_record(None) is None
    assert "5.50 px wide" in describe_scale(rule) and describe_scale((1024, 1792)) == "at FOV diameters 1024–1792 px"


def test_self_consistency_is_high_for_a_decided_map_and_low_for_one_near_its_threshold():
    decided = np.array([0.02, 0.03, 0.97, 0.99])
    unsure = np.array([0.40, 0.45, 0.55, 0.60])
    assert self_consistency(decided, 0.5) > 0.95 > 0.6 > self_consistency(unsure, 0.5)


def test_the_diameter_search_climbs_from_the_stored_choice_to_the_most_self_consistent_diameter():
    search = DiameterSearch.within((1024, 1792), 0.5)
    assert search.candidates == (1024, 1280, 1536, 1792)
    asked = []

    def score(peak):
        return lambda diameter: asked.append(diameter) or -abs(diameter - peak)

    assert search.choose(3000, score(1280)) == 1280 and asked[:2] == [1792, 1536]  # starts at 1792 (clamped), climbs down
    asked.clear()
    assert search.choose(3000, score(1792)) == 1792 and sorted(set(asked)) == [1536, 1792, 2240]  # no further
    assert search.choose(500, score(1536)) == 1536  # a small photograph starts at 1024 and climbs up
    assert search.choose(900, lambda d: 0.5) == 1024  # ties keep the stored choice


def test_the_search_goes_above_the_stored_range_up_to_the_photographs_own_diameter():
    search = DiameterSearch.within((1024, 1792), 0.5)
    assert search.candidates_for(3250) == (1024, 1280, 1536, 1792, 2240, 2816, 3250)  # x1.25 above, then its own
    assert search.candidates_for(1000) == search.candidates_for(1792) == (1024, 1280, 1536, 1792)
    assert search.candidates_for(1800) == (1024, 1280, 1536, 1792, 1800)
    assert search.choose(3250, lambda d: -abs(d - 2600)) == 2816
    assert search.choose(2200, lambda d: -abs(d - 2600)) == 2200  # never enlarged past its own 2200 px
    assert search.choose(1792, lambda d: -abs(d - 2600)) == 1792  # a FOV capped at the range: within it (the benchmark)
    one = DiameterSearch.within((1024, 1024), 0.5)  # a run that stored one diameter (trained without HRF)
    assert one.candidates_for(3250) == (1024, 1280, 1600, 1984, 2496, 3250)  # none just below its own
    assert one.choose(3250, lambda d: -abs(d - 1800)) == 1984 and one.choose(900, lambda d: d) == 1024


def striped_photograph() -> tuple[np.ndarray, np.ndarray]:
    """(image, FOV mask): a 561-px FOV disk crossed by vertical stripes of period 10 px, as vessels of one width."""
    rows, cols = np.mgrid[:600, :700]
    mask = (rows - 300) ** 2 + (cols - 350) ** 2 <= 280**2
    stripes = np.where(cols % 10 < 4, 0.8, 0.3)
    return np.where(mask, stripes, 0.0)[..., None].repeat(3, axis=2).astype(np.float32), mask


def stripe_model(surest_at: int, views: list):
    """A model surest (probabilities near 0/1) where the photograph's FOV is ``surest_at`` px across, i.e. where its
    stripes have the period they have there, unsure (near 0.5) the further they are from it; ``views`` gets each input's width."""
    period_wanted = 10 * surest_at / 561

    def predict(view):
        views.append(view.shape[1])
        row = view[view.shape[0] // 2, :, 1]
        stripe = row > row.mean()
        period = 2 * row.size / max(int(np.count_nonzero(stripe[1:] != stripe[:-1])), 1)
        sureness = max(0.0, 0.49 - abs(period - period_wanted) / period_wanted)
        return np.where(view[..., 1] > row.mean(), 0.5 + sureness, 0.5 - sureness).astype(np.float32)

    return predict


def test_within_its_range_the_search_scores_whole_fovs_and_keeps_the_surest_map():
    image, mask = striped_photograph()  # FOV 561 px: within the range, every try on the whole FOV box
    widths = []
    search = DiameterSearch.within((1024, 1792), 0.5)
    probability, diameter = search.run(stripe_model(1280, widths), image, mask)
    assert diameter == 1280 and probability.shape == mask.shape
    assert len(widths) == 3 and min(widths) > 1024  # 1024 (the stored choice), 1280, 1536: one run each, the chosen map kept
    assert probability[mask].max() > 0.9 and probability[mask].min() < 0.1  # the sure map, mapped back onto the photograph
    assert predict_scaled(stripe_model(1280, []), image, mask, search).shape == mask.shape
    widths.clear()
    flat = search.run(lambda view: widths.append(view.shape[1]) or np.ones(view.shape[:2], np.float32), image, mask)[1]
    assert flat == 1024 and len(widths) == 2  # its neighbour only ties: the start's map is kept, nothing runs twice


def test_above_its_range_the_search_scores_central_windows_then_runs_the_chosen_diameter_once():
    image, mask = striped_photograph()  # FOV 561 px, above a range of 256–512 px: tries 256, 512 and its own 561
    widths = []
    search = DiameterSearch.within((256, 512), 0.5)
    assert search.candidates_for(561) == (256, 512, 561)
    probability, diameter = search.run(stripe_model(512, widths), image, mask)
    assert diameter == 512 and probability.shape == mask.shape
    # 512 (the stored choice), 256, 561 scored on the FOV's central square, half its diameter on a side ...
    assert [round(w / d, 2) for w, d in zip(widths[:3], (512, 256, 561), strict=True)] == [0.5, 0.5, 0.5]
    assert len(widths) == 4 and widths[3] > 512  # ... then only the chosen 512 on the whole FOV box (with its margin)
    assert probability[mask].max() > 0.9 and probability[mask].min() < 0.1
    # with test-time flips each square is scored flip-averaged, as the kept view then runs: 4 runs per try and 4 at the end
    from m2unet.inference.tiling import flip_average

    widths.clear()
    flipped, diameter = search.run(stripe_model(512, widths), image, mask, final=flip_average)
    assert diameter == 512 and widths == [w for w in (widths[0], widths[4], widths[8], widths[12]) for _ in range(4)]
    np.testing.assert_allclose(flipped, probability, atol=1e-6)  # mirror-symmetric stripes: the flips change nothing


def test_the_window_is_the_fovs_central_square_cut_by_the_frame():
    image, mask = striped_photograph()
    window = window_frame(mask, 1122)  # twice the FOV's 561 px
    assert window.box == (300 - 140, 350 - 140, 280, 280) and window.size == (560, 560) and window.scale == 2.0
    wide = np.zeros((400, 1000), bool)
    wide[:, 100:900] = True  # a FOV cut at the top and bottom: 800 px across, the frame only 400 high
    assert window_frame(wide, 800).box == (0, 300, 400, 400)


def test_search_applies_only_to_a_scale_normalised_models_diameters():
    universal = {"fov_diameter": 1024, "run_fov_diameter": [1024, 1792], "threshold": 0.67}
    search = model_scale(universal, search=True)
    assert isinstance(search, DiameterSearch) and search.threshold == 0.67 and search.start == (1024, 1792)
    assert model_scale(universal) == (1024, 1792)
    assert model_scale({"dataset": "drive", "threshold": 0.5}, search=True) == (0, 538)  # per-dataset: shrink only, as before
    assert model_scale({"fov_diameter": 1024, "threshold": 0.6}, search=True).candidates == (1024,)  # above it only
    assert scale_record(search) == {"search": [1024, 1280, 1536, 1792], "start": [1024, 1792], "above_range": True, "window": 0.5,
                                    "ratio_above_range": 1.25}
    assert "most self-consistent" in describe_scale(search)


def test_evaluate_tta_searches_on_plain_maps_and_flips_only_the_kept_view():
    from m2unet.evaluation.predictor import ScaledPredictor

    image, mask = striped_photograph()
    views = []
    plain = ScaledPredictor(stripe_model(1536, []), DiameterSearch.within((1024, 1792), 0.5), None, 1.5)
    flipped = ScaledPredictor(stripe_model(1536, views), plain.scale, None, 1.5).with_flips()
    probability = flipped(image)
    assert flipped.ran_at == 1536 and probability.shape == mask.shape
    # 1024, 1280, 1536, 1792 tried once each, unflipped; then the kept 1536 view's three flips (its plain map reused)
    assert len(views) == 4 + 3 and len(set(views[:4])) == 4 and views[4:] == [views[2]] * 3
    # the stripes are mirror-symmetric, so each flipped map, flipped back, is the plain one
    np.testing.assert_allclose(probability, plain(image), atol=1e-6)
