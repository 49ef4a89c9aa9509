"""``rvnpu compile`` and ``rvnpu run`` from the command line, and their one-line refusals."""

import sys

import numpy as np
import onnx
import pytest

from cli_runner import rvnpu
from onnx_models import calibration, float_model, qoperator_model, quantise
from rvnpu.cli import main
from rvnpu.sim import toolchain



@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cnn")
    model, shape = float_model("cnn", seed=2)
    path = quantise(model, shape, tmp / "cnn.onnx", fmt="QDQ", per_channel=True)
    np.save(tmp / "x.npy", np.stack(calibration(shape, 7, 2)))
    return path, tmp / "x.npy"


def _one_line_error(capsys, argv):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rvnpu: error: ") and "Traceback" not in err
    return err


def test_compile_writes_the_program_and_reports_layers_and_memory(cnn, tmp_path, capsys):
    path, _ = cnn
    assert main(["compile", str(path), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    for text in ("5 layers on the chip", "Conv", "MaxPool", "Flatten", "Gemm", "MACs",
                 "bytes of weights and constants", "of 65536 bytes of RAM"):
        assert text in out
    for name in ("model.c", "model_data.h", "model.bin", "model.elf"):
        assert (tmp_path / "out" / name).is_file()
    program = (tmp_path / "out" / "model.c").read_text()
    assert "rvnpu_conv2d_im2col(&l0_conv" in program and "rvnpu_program_run" in program


def test_compile_refuses_an_unsupported_operator_naming_the_node(tmp_path, capsys):
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s"], ["q"]),
         helper.make_node("Sigmoid", ["q"], ["y"], name="squash")], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4])],
        [onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    err = _one_line_error(capsys, ["compile", str(path), "-o", str(tmp_path / "out")])
    assert "operator Sigmoid (node 'squash') is not supported" in err


@pytest.mark.parametrize("modes", ["tflite", "none"])
def test_compile_refuses_an_engine_without_onnx_runtime_requantisation(cnn, tmp_path, capsys,
                                                                        modes):
    path, _ = cnn
    err = _one_line_error(capsys, ["compile", str(path), "-o", str(tmp_path / "out"),
                                   "--requant-modes", modes])
    assert "which this engine was built without" in err and "--requant-modes ort" in err
    assert not (tmp_path / "out").exists()


def test_missing_files_are_one_line_errors(cnn, tmp_path, capsys):
    path, _ = cnn
    err = _one_line_error(capsys, ["compile", str(tmp_path / "nope.onnx")])
    assert "no such model file" in err
    err = _one_line_error(capsys, ["run", str(path), "--input", str(tmp_path / "nope.npy")])
    assert "no such input file" in err


def test_without_onnx_the_error_says_what_to_install(cnn, tmp_path, capsys, monkeypatch):
    path, x = cnn
    monkeypatch.setitem(sys.modules, "onnx", None)          # import onnx raises ImportError
    err = _one_line_error(capsys, ["run", str(path), "--input", str(x)])
    assert "pip install 'rvnpu[onnx]'" in err


@pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                    reason="Verilator not available")
def test_run_prints_outputs_cycles_and_the_comparison(cnn, tmp_path):
    path, x = cnn
    result = rvnpu("run", str(path), "--input", str(x), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "cycles per layer (mean of 2 inputs)" in out
    assert "output 0:" in out and "output 1:" in out
    assert "all 2 outputs match onnxruntime exactly" in out
    assert "cycles an inference" in out


@pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                    reason="Verilator not available")
def test_run_of_an_int8_output_model(tmp_path, capsys):
    model, shape = qoperator_model("conv_relu_int8")
    path = tmp_path / "conv.onnx"
    onnx.save(model, path)
    np.save(tmp_path / "x.npy", calibration(shape, 1, 1)[0])
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "out")]) == 0
    assert "matches onnxruntime exactly" in capsys.readouterr().out
