"""The autosave file: atomic writes, the backup and dated copies, and what happens to a bad file."""
import errno
import json
import logging
import os

import pytest

from devioc import autosave
from devioc.autosave import (BACKUP_NAME, DATED_KEEP, FILE_NAME, SaveFileError, file_text, load, read_file,
                             write_file)

from autosave_faults import fill, remount

FIELDS = {'level': {'kind': 'Float', 'record': 'ao', 'name': 'level',
                    'values': {'VAL': 7.25, 'HIHI': 42.0, 'EGU': 'mm'}},
          'mode': {'kind': 'Enum', 'record': 'mbbo', 'name': 'mode', 'states': ['A', 'B', 'C'], 'values': {'VAL': 2}},
          'odd': {'kind': 'Float', 'record': 'ao', 'name': 'odd', 'values': {'VAL': float('-inf'), 'HIGH': 1e-300}}}


def text(fields=FIELDS):
    return file_text('Saved', 'DEV', fields)


def test_a_written_file_reads_back_the_same_typed_values(tmp_path):
    write_file(tmp_path, text())
    data = read_file(tmp_path / FILE_NAME)
    assert data['fields'] == FIELDS
    assert isinstance(data['fields']['mode']['values']['VAL'], int)
    assert (data['format'], data['version'], data['model'], data['device']) == ('devioc-autosave', 1, 'Saved', 'DEV')
    assert os.stat(tmp_path / FILE_NAME).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]  # no temporary file left


def test_each_write_keeps_the_previous_file_as_the_backup(tmp_path):
    first = {'level': {**FIELDS['level'], 'values': {'VAL': 1.0}}}
    second = {'level': {**FIELDS['level'], 'values': {'VAL': 2.0}}}
    write_file(tmp_path, text(first))
    write_file(tmp_path, text(second))
    assert read_file(tmp_path / FILE_NAME)['fields'] == second
    assert read_file(tmp_path / BACKUP_NAME)['fields'] == first


def test_every_cut_short_file_is_refused_never_read_in_part(tmp_path):
    write_file(tmp_path, text())
    whole = (tmp_path / FILE_NAME).read_bytes()
    cut = tmp_path / 'cut.json'
    for size in range(len(whole) - 1):  # a file cut at any byte (a half-written file) is never used
        cut.write_bytes(whole[:size])
        with pytest.raises(SaveFileError):
            read_file(cut)


def test_a_changed_value_fails_the_checksum(tmp_path):
    write_file(tmp_path, text())
    path = tmp_path / FILE_NAME
    path.write_text(path.read_text().replace('7.25', '7.5'))
    with pytest.raises(SaveFileError, match='sha256'):
        read_file(path)


def test_a_hand_edited_file_without_its_checksum_line_is_read(tmp_path, caplog):
    write_file(tmp_path, text())
    path = tmp_path / FILE_NAME
    lines = [line for line in path.read_text().splitlines() if '"sha256"' not in line]
    path.write_text('\n'.join(lines).replace('7.25', '7.5'))
    assert read_file(path)['fields']['level']['values']['VAL'] == 7.5
    assert 'no sha256' in caplog.text


@pytest.mark.parametrize('change, message', [
    (lambda d: d.update(version=2), 'version 2'),
    (lambda d: d.update(format='other'), 'not a devioc-autosave file'),
    (lambda d: d.update(fields=[1, 2]), '"fields" must map'),
])
def test_a_file_of_another_format_or_version_is_refused_naming_why(tmp_path, change, message):
    data = json.loads(text())
    change(data)
    path = tmp_path / FILE_NAME
    path.write_text(json.dumps(data))
    with pytest.raises(SaveFileError, match=message):
        read_file(path)


def test_a_damaged_file_falls_back_to_the_backup_and_is_kept_aside(tmp_path, caplog):
    write_file(tmp_path, text({'level': {**FIELDS['level'], 'values': {'VAL': 1.0}}}))
    write_file(tmp_path, text())
    path = tmp_path / FILE_NAME
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.ERROR):
        fields, source = load(tmp_path, 'DEV')
    assert source == tmp_path / BACKUP_NAME and fields['level']['values'] == {'VAL': 1.0}
    assert f'{path}: not a complete JSON file' in caplog.text
    assert not path.exists() and len(list(tmp_path.glob(f'{FILE_NAME}.corrupt-*'))) == 1


def test_with_both_files_damaged_there_is_nothing_to_restore(tmp_path, caplog):
    for name in (FILE_NAME, BACKUP_NAME):
        (tmp_path / name).write_text('{"format": "devioc-autosave", "vers')
    assert load(tmp_path, 'DEV') == ({}, None)
    assert caplog.text.count('autosave file unusable') == 2


def test_no_file_is_nothing_to_restore_and_no_error(tmp_path, caplog):
    assert load(tmp_path, 'DEV') == ({}, None)
    assert 'unusable' not in caplog.text


def test_dated_copies_keep_the_newest_few(tmp_path, monkeypatch):
    stamps = iter(f'20261130-1200{i:02d}' for i in range(20))
    monkeypatch.setattr(autosave.time, 'strftime', lambda fmt, *a: next(stamps))
    for i in range(10):
        write_file(tmp_path, text({'level': {**FIELDS['level'], 'values': {'VAL': float(i)}}}), keep_dated=True)
    copies = autosave.dated_copies(tmp_path)
    assert [p.name for p in copies] == [f'autosave-20261130-1200{i:02d}.json' for i in range(5, 9)]
    assert len(copies) == DATED_KEEP
    assert read_file(copies[-1])['fields']['level']['values'] == {'VAL': 8.0}  # the file before the last write


def test_a_full_disk_fails_the_write_and_keeps_the_previous_file(tmpfs):
    point = tmpfs(64)
    write_file(point, text())
    filler = fill(point)
    big = {f'f{i}': {**FIELDS['level'], 'name': f'f{i}'} for i in range(400)}
    with pytest.raises(OSError) as info:
        write_file(point, text(big))
    assert info.value.errno == errno.ENOSPC
    assert read_file(point / FILE_NAME)['fields'] == FIELDS
    assert not list(point.glob('.*.tmp'))
    filler.unlink()
    write_file(point, text(big))
    assert read_file(point / FILE_NAME)['fields'] == big


def test_a_read_only_directory_fails_the_write_but_still_restores(tmpfs):
    point = tmpfs(64)
    write_file(point, text())
    remount(point, read_only=True)
    with pytest.raises(OSError) as info:
        write_file(point, text({}))
    assert info.value.errno == errno.EROFS
    assert load(point, 'DEV') == (FIELDS, point / FILE_NAME)


def test_temporary_files_left_by_a_killed_write_are_removed_at_the_next_start(tmp_path):
    """A kill -9 during a write leaves ``.autosave.json.<pid>.tmp`` (a new name per process): the
    next saver removes those of other processes, not its own (a write it may be making)."""
    from devioc import models
    from devioc.autosave import Saver

    class One(models.Model):
        level = models.Float('level', autosave=True)

    stale = tmp_path / f'.{FILE_NAME}.999999999.tmp'
    own = tmp_path / f'.{FILE_NAME}.{os.getpid()}.tmp'
    stale.write_text('{"cut sh')
    own.write_text('{"being writ')
    Saver(One, 'DEV', directory=tmp_path)
    assert not stale.exists() and own.exists()
