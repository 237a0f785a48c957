"""The waitlist ids wait in for capacity: due in time order, woken oldest first, bounded."""

from __future__ import annotations

import pytest

from banditlb.waitlist import Waitlist


def test_items_due_at_once_come_out_oldest_first_whatever_their_times():
    waiting = Waitlist()
    for item, until in (("a", 5.0), ("b", 3.0), ("c", 4.0), ("d", 4.0)):
        assert waiting.add(item, until)
    assert waiting.due(2.9) == []
    assert waiting.due(5.0) == ["a", "b", "c", "d"]  # arrival order, not due order
    assert len(waiting) == 0 and waiting.next_due() is None


def test_only_the_items_due_come_out_and_next_due_is_the_earliest():
    waiting = Waitlist()
    waiting.add("late", 9.0)
    waiting.add("early", 2.0)
    waiting.add("mid", 4.0)
    assert waiting.next_due() == 2.0
    assert waiting.due(4.0) == ["early", "mid"]  # 'mid' is due exactly at 4.0
    assert waiting.next_due() == 9.0 and len(waiting) == 1
    assert waiting.due(8.99) == []
    assert waiting.due(100.0) == ["late"]


def test_max_waiting_bounds_the_list_and_counts_who_was_turned_away():
    waiting = Waitlist(max_waiting=2)
    assert waiting.add("a", 1.0) and waiting.add("b", 1.0)
    assert not waiting.add("c", 1.0)
    assert not waiting.add("d", 0.5)
    assert (len(waiting), waiting.waits, waiting.turned_away) == (2, 2, 2)
    assert waiting.due(1.0) == ["a", "b"]
    assert waiting.add("c", 2.0)  # room again once the due ones left
    assert (waiting.waits, waiting.turned_away) == (3, 2)


def test_a_waitlist_of_size_zero_turns_everyone_away():
    waiting = Waitlist(max_waiting=0)
    assert not waiting.add("a", 1.0)
    assert waiting.turned_away == 1 and len(waiting) == 0
    with pytest.raises(ValueError, match="max_waiting"):
        Waitlist(max_waiting=-1)


def test_an_item_keeps_its_place_across_waits_until_it_is_forgotten():
    waiting = Waitlist()
    waiting.add("old", 1.0)
    waiting.add("new", 1.0)
    assert waiting.due(1.0) == ["old", "new"]
    # both wait again; 'new' asks first, 'old' keeps its place ahead of it
    waiting.add("new", 2.0)
    waiting.add("old", 2.0)
    assert waiting.due(2.0) == ["old", "new"]
    # 'old' is answered; if it came back it would be a newcomer behind 'new'
    waiting.forget("old")
    waiting.add("old", 3.0)
    waiting.add("new", 3.0)
    assert waiting.due(3.0) == ["new", "old"]


def test_forgetting_an_item_that_never_waited_is_harmless():
    waiting = Waitlist()
    waiting.forget("never")
    waiting.add("a", 1.0)
    assert waiting.due(1.0) == ["a"]
