"""The quiz's marking and explanations, without the app."""

import pytest

from latent_demo.quiz import QUESTIONS, LessonNumbers, check_answers

MODEL_ONLY = LessonNumbers(pixel_values=786_432, latent_values=16_384, flop_ratio=678.6, attention_ratio=4096,
                           steps=25)
VISITOR = LessonNumbers(pixel_values=516_096, latent_values=10_752, flop_ratio=678.6, attention_ratio=4096, steps=25,
                        pixel_image_seconds=7_200.0, latent_image_seconds=10.6, psnr_db=27.31, linear_psnr_db=14.2,
                        noise_loss=0.0312, noise_loss_timestep=500)
RIGHT = [question.answer for question in QUESTIONS]


def test_every_question_has_its_answer_among_four_choices():
    assert len(QUESTIONS) == 7 and len({q.key for q in QUESTIONS}) == 7
    assert all(len(q.choices) == 4 and q.answer in q.choices for q in QUESTIONS)


def test_a_right_answer_is_marked_right_and_a_wrong_one_wrong():
    assert all(mark.right for mark in check_answers(RIGHT, MODEL_ONLY))
    wrong = [next(c for c in q.choices if c != q.answer) for q in QUESTIONS]
    marks = check_answers(wrong, MODEL_ONLY)
    assert not any(mark.right for mark in marks)
    assert [mark.answer for mark in marks] == RIGHT and [mark.chosen for mark in marks] == wrong
    assert not any(mark.right for mark in check_answers([None] * len(QUESTIONS), MODEL_ONLY))


def test_explanations_quote_the_visitors_numbers_or_say_how_to_get_them():
    visitor = {mark.question: mark.why for mark in check_answers(RIGHT, VISITOR)}
    model = {mark.question: mark.why for mark in check_answers(RIGHT, MODEL_ONLY)}
    purpose, reason, decoder = (QUESTIONS[i].text for i in (0, 4, 5))
    assert "516,096 pixel values became 10,752 latents (48× fewer), and the full VAE rebuilt it at 27.3 dB" \
        in visitor[purpose]
    assert "786,432 pixel values became 16,384 latents" in model[purpose] and "encode an image there" in model[purpose]
    assert "about 7,200 s on this machine, against 10.6 s on latents" in visitor[reason]
    assert "press 'Count and measure'" in model[reason]
    assert "27.3 dB PSNR, the linear 4×3 map 14.2 dB" in visitor[decoder]
    assert "679× the FLOPs" in visitor[QUESTIONS[1].text] and "4,096× the scores" in visitor[QUESTIONS[1].text]
    predicts = QUESTIONS[6].text
    assert "at t = 500, the UNet's answer scored 0.0312 (mean squared error: the training loss)" in visitor[predicts]
    assert "press 'Ask the UNet'" in model[predicts]


def test_answers_that_are_not_choices_are_refused():
    with pytest.raises(ValueError, match="is not one of the answers"):
        check_answers(["The UNet"] + RIGHT[1:], MODEL_ONLY)
    with pytest.raises(ValueError, match="expected 7 answers, got 6"):
        check_answers(RIGHT[:6], MODEL_ONLY)


def test_the_session_figures_are_figures_the_quiz_knows():
    """A tab writes figures by name into state.LessonFigures: a name the quiz does not quote fails at once."""
    import dataclasses

    from latent_demo.quiz import LessonNumbers
    from latent_demo.ui.state import LessonFigures

    quoted = {field.name for field in dataclasses.fields(LessonNumbers)}
    assert {field.name for field in dataclasses.fields(LessonFigures)} <= quoted
    seen = LessonFigures().measured(psnr_db=24.5)
    assert seen.known() == {"psnr_db": 24.5}
    with pytest.raises(TypeError):
        seen.measured(psnr=24.5)
