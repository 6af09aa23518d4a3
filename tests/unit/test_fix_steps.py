"""The fix model: the lines a rule writes become this host's text, its steps and its effects."""

from __future__ import annotations

from factories import host

from mldoctor.facts.host import UserFacts
from mldoctor.fixes.steps import plan
from mldoctor.model import EFFECTS, Step

ROOT = UserFacts(uid=0, name="root")


def test_each_line_is_a_step_with_who_types_it_and_its_note():
    fix = plan("sudo systemctl restart docker   # applies daemon.json\ndocker info", host())
    assert fix.steps == [
        Step("sudo systemctl restart docker", as_root=True, note="applies daemon.json"),
        Step("docker info"),
    ]
    assert fix.effects == ["restarts-docker"]


def test_without_sudo_every_root_line_says_so_not_only_the_first():
    fix = plan("sudo apt-get install -y foo\necho ok\nsudo reboot", host(sudo=False))
    assert fix.text == "as root: apt-get install -y foo\necho ok\nas root: reboot"
    assert [step.as_root for step in fix.steps] == [True, False, True]
    assert fix.effects == ["reboot"]


def test_root_types_no_sudo_and_the_steps_still_say_they_need_root():
    fix = plan("echo x | sudo tee /etc/f && sudo service docker restart", host(user=ROOT))
    assert fix.text == "echo x | tee /etc/f && service docker restart"
    assert fix.steps[0].as_root and fix.effects == ["restarts-docker"]


def test_unknown_sudo_keeps_it():
    assert plan("sudo reboot", host(sudo=None)).text == "sudo reboot"
    assert plan("sudo reboot", None).text == "sudo reboot"


def test_a_relogin_named_in_a_note_is_an_effect_a_reboot_named_in_a_note_is_not():
    assert plan("sudo usermod -aG docker bob   # then log out and back in", host()).effects == ["relogin"]
    advice = "sudo dmesg | tail -20   # the driver's account; a reboot clears most wedged states"
    assert plan(advice, host()).effects == []


def test_starting_a_stopped_daemon_is_not_a_restart():
    assert plan("sudo systemctl start docker", host()).effects == []


def test_every_effect_has_words_for_the_outputs():
    assert set(EFFECTS) == {"relogin", "restarts-docker", "reboot"}
