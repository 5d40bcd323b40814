"""Parity with vectors recorded from the official implementation (≤ 1e-5 max abs error)."""
import pytest
import torch

from ppd_dev import parity as parity_tool


@pytest.fixture(scope='module')
def errors(parity_file):
    return parity_tool.run_parity(parity_tool.load_parity_file(parity_file), parity_file)


@pytest.mark.parametrize('part', ['dit_forward', 'sampling', 'encoder_forward'])
def test_part_matches_official(errors, part):
    assert errors[part] <= 1e-5, f'{part}: max abs error {errors[part]:.3e}'


def test_cli_reports_each_part(parity_file, capsys):
    assert parity_tool.main([str(parity_file)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ['dit_forward', 'sampling', 'encoder_forward']
    assert all('max_abs_err=' in line and line.endswith('(tol 1e-05)') for line in lines)


def test_cli_fails_on_mismatch(parity_file, tmp_path, capsys):
    data = torch.load(parity_file, map_location='cpu', weights_only=True)
    data['encoder_forward']['semantics'] = data['encoder_forward']['semantics'] + 1e-3
    tampered = tmp_path / 'tampered.pt'
    torch.save(data, tampered)
    assert parity_tool.main([str(tampered)]) == 1
    out = capsys.readouterr().out
    assert 'encoder_forward' in out and 'FAIL' in out


def test_cli_rejects_missing_or_invalid_files(tmp_path, capsys):
    assert parity_tool.main([str(tmp_path / 'absent.pt')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    junk = tmp_path / 'junk.pt'
    junk.write_text('hello')
    assert parity_tool.main([str(junk)]) == 2
    assert 'not a readable parity file' in capsys.readouterr().err
    partial = tmp_path / 'partial.pt'
    torch.save({'dit_config': {}}, partial)
    assert parity_tool.main([str(partial)]) == 2
    assert 'missing entries' in capsys.readouterr().err
