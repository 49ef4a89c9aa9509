"""``rvnpu compile`` and ``rvnpu run`` from the command line, and their one-line refusals."""

import sys
from pathlib import Path

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
    # The Flatten is folded into the Gemm's weights; every layer runs from one list.
    for text in ("4 layers on the chip", "Conv", "MaxPool", "Gemm", "MACs",
                 "engine: 4 of 4 layers run from engine command lists",
                 "bytes of weights and constants", "of 65536 bytes of RAM"):
        assert text in out
    for name in ("model.c", "model_data.h", "model.bin", "model.elf"):
        assert (tmp_path / "out" / name).is_file()
    program = (tmp_path / "out" / "model.c").read_text()
    assert program.count("rvnpu_run_list(list0, ") == 1 and "rvnpu_list_wait()" in program


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
    err = _one_line_error(capsys, ["compile", str(tmp_path), "-o", str(tmp_path / "out")])
    assert f"{tmp_path} is a directory, not an ONNX model file" in err
    assert not (tmp_path / "out").exists()


def _tree(path):
    """Every file under ``path`` with its bytes: what a refusal must leave as it was."""
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_compile_refuses_an_output_that_is_or_lies_under_a_file(cnn, tmp_path, capsys):
    path, _ = cnn
    (tmp_path / "afile").write_text("keep")
    err = _one_line_error(capsys, ["compile", str(path), "-o", str(tmp_path / "afile")])
    assert f"the output directory {tmp_path / 'afile'} is a file" in err
    err = _one_line_error(capsys, ["compile", str(path), "-o", str(tmp_path / "afile" / "sub")])
    assert f"{tmp_path / 'afile' / 'sub'} cannot be made: {tmp_path / 'afile'} is a file" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    err = _one_line_error(capsys, ["compile", str(path), "-o", str(tmp_path / "mine")])
    assert "holds other files than an earlier build" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine"]
    assert (tmp_path / "afile").read_text() == "keep"
    assert _tree(tmp_path / "mine") == {Path("notes.txt"): b"mine"}


def test_a_refusal_for_lack_of_ram_leaves_an_earlier_build_intact(cnn, tmp_path, capsys):
    path, _ = cnn
    out = tmp_path / "out"
    err = _one_line_error(capsys, ["compile", str(path), "-o", str(out), "--mem-bytes", "4096"])
    assert "bytes missing; try --mem-bytes 16384" in err
    assert list(tmp_path.iterdir()) == []           # nothing, not even a staging folder
    assert main(["compile", str(path), "-o", str(out)]) == 0
    before = _tree(out)
    assert {Path("model.c"), Path("model.bin"), Path("model.elf")} <= set(before)
    capsys.readouterr()
    err = _one_line_error(capsys, ["compile", str(path), "-o", str(out), "--mem-bytes", "4096"])
    assert "bytes missing" in err
    assert _tree(out) == before and list(tmp_path.iterdir()) == [out]


def test_compile_refuses_a_float_model_saying_how_to_quantise_it(tmp_path, capsys):
    model, _ = float_model("cnn", seed=2)
    onnx.save(model, tmp_path / "float.onnx")
    err = _one_line_error(capsys, ["compile", str(tmp_path / "float.onnx"), "-o",
                                   str(tmp_path / "out")])
    assert "the model is not quantised (a float model" in err
    assert "onnxruntime.quantization.quantize_static" in err and "rvnpu digits" in err
    assert not (tmp_path / "out").exists()


def test_unequal_weight_zero_points_are_named_as_plain_integers(tmp_path, capsys):
    from onnx import TensorProto, helper, numpy_helper
    f32 = np.float32
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (np.array(0.1, f32), "xs"), (np.array(128, np.uint8), "xz"),
        (np.ones((2, 1, 1, 1), np.uint8), "w"), (np.full(2, 0.1, f32), "ws"),
        (np.array([108, 3], np.uint8), "wz"), (np.array(0.2, f32), "ys"),
        (np.array(128, np.uint8), "yz"))]
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
         helper.make_node("QLinearConv", ["q", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                          name="conv")], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 2, 3, 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              tmp_path / "m.onnx")
    err = _one_line_error(capsys, ["compile", str(tmp_path / "m.onnx"), "-o",
                                   str(tmp_path / "out")])
    assert "zero points must all be equal" in err and "not [3, 108]" in err
    assert "np." not in err


def test_run_refuses_a_model_onnxruntime_cannot_load(cnn, tmp_path, capsys):
    path, x = cnn
    model = onnx.load(path)
    model.ir_version = 99
    onnx.save(model, tmp_path / "ir99.onnx")
    err = _one_line_error(capsys, ["run", str(tmp_path / "ir99.onnx"), "--input", str(x),
                                   "-o", str(tmp_path / "out")])
    assert "onnxruntime cannot load" in err and "Unsupported model IR version: 99" in err
    assert not (tmp_path / "out").exists()


def _bad_inputs(tmp_path):
    """Files ``--input`` refuses, with what the message says, for the cnn's [1, 2, 7, 6]."""
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 2, 7, 6), np.float32))
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    np.save(tmp_path / "complex.npy", np.zeros((1, 2, 7, 6), np.complex64))
    np.save(tmp_path / "long.npy", np.zeros((1, 168), np.float32))
    np.save(tmp_path / "flat.npy", np.zeros(84, np.float32))
    np.save(tmp_path / "none.npy", np.zeros((0, 1, 2, 7, 6), np.float32))
    (tmp_path / "text.npy").write_text("1 2 3\n")
    np.save(tmp_path / "whole.npy", np.zeros((1, 2, 7, 6), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "whole.npy").read_bytes()[:100])
    return {
        "x.npz": "is an .npz archive; give one array saved with numpy.save",
        "strings.npy": "holds strings (dtype <U1), not real numbers",
        "objects.npy": "holds Python objects (an object array), not numbers",
        "complex.npy": "holds complex numbers (dtype complex64)",
        "long.npy": "has shape [1, 168], but the model's input has shape [1, 2, 7, 6]; give one "
                    "of that shape or a stack of them, shape [N, 1, 2, 7, 6]",
        "flat.npy": "has shape [84], but the model's input has shape [1, 2, 7, 6]",
        "none.npy": "holds no inputs (shape [0, 1, 2, 7, 6])",
        "text.npy": "is not a NumPy .npy file",
        "cut.npy": "cannot read the input",
    }


def test_run_refuses_inputs_that_are_not_the_models_before_building(cnn, tmp_path, capsys):
    path, _ = cnn
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, message in _bad_inputs(inputs).items():
        err = _one_line_error(capsys, ["run", str(path), "--input", str(inputs / name),
                                       "-o", str(tmp_path / "out")])
        assert f"the input {inputs / name} {message}" in err or message in err, (name, err)
        assert not (tmp_path / "out").exists()


def test_run_refuses_save_paths_it_cannot_write(cnn, tmp_path, capsys):
    path, x = cnn
    (tmp_path / "afile").write_text("keep")
    err = _one_line_error(capsys, ["run", str(path), "--input", str(x), "-o",
                                   str(tmp_path / "out"), "--save-outputs",
                                   str(tmp_path / "afile" / "y.npy")])
    assert f"--save-outputs {tmp_path / 'afile' / 'y.npy'} cannot be written" in err
    err = _one_line_error(capsys, ["run", str(path), "--input", str(x), "-o",
                                   str(tmp_path / "out"), "--save-raw", str(tmp_path)])
    assert f"--save-raw {tmp_path} is a directory" in err
    err = _one_line_error(capsys, ["run", str(path), "--input", str(x), "-o",
                                   str(tmp_path / "out"), "--save-outputs",
                                   str(tmp_path / "y.npy"), "--save-raw",
                                   str(tmp_path / "." / "y.npy")])
    assert "--save-outputs and --save-raw name the same file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def _quantize_linear_of(path):
    """The model's QuantizeLinear of its input, alone, in an onnxruntime session."""
    import onnxruntime
    model = onnx.load(path)
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear"
                and n.input[0] == model.graph.input[0].name)
    params = [i for i in model.graph.initializer if i.name in node.input]
    dtype = next(i for i in params if i.name == node.input[2]).data_type
    graph = onnx.helper.make_graph(
        [node], "q", [model.graph.input[0]],
        [onnx.helper.make_tensor_value_info(node.output[0], dtype, None)], params)
    single = onnx.helper.make_model(graph, opset_imports=model.opset_import)
    single.ir_version = model.ir_version
    return onnxruntime.InferenceSession(single.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("activations", ["QUInt8", "QInt8"])
def test_nan_and_inf_inputs_quantise_as_onnxruntime_does(tmp_path, activations):
    from rvnpu.compiler.onnx.importer import import_model
    from rvnpu.compiler.onnx.reference import quantize_input
    model, shape = float_model("cnn", seed=2)
    path = quantise(model, shape, tmp_path / "cnn.onnx", activations=activations, seed=3)
    session, ir = _quantize_linear_of(path), import_model(path)
    assert ir.tensors[ir.chip_input].dtype == ("uint8" if activations == "QUInt8" else "int8")
    rng = np.random.default_rng(17)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30,
                         np.finfo(np.float32).max, np.finfo(np.float32).tiny], np.float32)
    for _ in range(20):
        x = (rng.normal(size=shape) * rng.choice([0.5, 3, 50])).astype(np.float32)
        where = rng.random(shape) < 0.4
        x[where] = rng.choice(specials, size=int(where.sum()))
        want = session.run(None, {"x": x})[0]
        np.testing.assert_array_equal(quantize_input(ir, x), want.astype(np.int64))
    lo, hi = ir.tensors[ir.chip_input].range
    assert quantize_input(ir, np.full(shape, np.nan, np.float32)).tolist() == \
        np.full(shape, lo).tolist()


def test_run_saves_outputs_and_says_when_it_builds_the_simulator(cnn, tmp_path, capsys,
                                                                 monkeypatch):
    """Without a simulator: the chip's results are the numpy model's, so this checks what
    ``rvnpu run`` does with them; the Verilator test below checks the real thing."""
    from rvnpu.compiler.onnx.reference import run_reference
    from rvnpu.flows import model as flow

    def run_model(compiled, inputs, *, max_cycles, on_build):
        on_build(None)
        on_build(47.2)
        results = []
        for x in inputs:
            y, q = run_reference(compiled.model, x)
            q = q.astype(compiled.model.tensors[compiled.model.chip_output].dtype)
            results.append(flow.ChipResult(q_output=q, output=y, layer_cycles=[1] * 5,
                                           cycles=9))
        return results

    monkeypatch.setattr(flow, "run_model", run_model)
    path, x = cnn
    y, q = tmp_path / "y.npy", tmp_path / "sub" / "q.npy"
    assert main(["run", str(path), "--input", str(x), "-o", str(tmp_path / "out"),
                 "--save-outputs", str(y), "--save-raw", str(q)]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "building the SoC simulator (first run for this configuration, ~1 min)...",
        "built the SoC simulator in 47 s"]
    session = flow.ort_session(path)
    inputs = np.load(x)
    want = np.stack([flow.ort_run(session, flow.import_model(path), v) for v in inputs])
    saved = np.load(y)
    assert saved.dtype == np.float32 and saved.shape == (2, 1, 5) == want.shape
    assert saved.tobytes() == want.tobytes()
    raw = np.load(q)
    assert raw.dtype == np.uint8 and raw.shape == (2, 1, 5)
    assert f"saved the outputs to {y} (float32 [2, 1, 5])" in out
    assert f"saved the chip's integers to {q} (uint8 [2, 1, 5])" in out
    # One input of the model's shape gives one output of its shape, not a stack of one.
    np.save(tmp_path / "one.npy", inputs[0])
    assert main(["run", str(path), "--input", str(tmp_path / "one.npy"), "-o",
                 str(tmp_path / "out"), "--save-outputs", str(y)]) == 0
    assert np.load(y).tobytes() == want[0].tobytes() and np.load(y).shape == (1, 5)


def test_without_onnx_the_error_says_what_to_install(cnn, tmp_path, capsys, monkeypatch):
    path, x = cnn
    monkeypatch.setitem(sys.modules, "onnx", None)          # import onnx raises ImportError
    err = _one_line_error(capsys, ["run", str(path), "--input", str(x)])
    assert "pip install 'rvnpu[onnx]'" in err


@pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                    reason="Verilator not available")
def test_run_prints_outputs_cycles_and_the_comparison(cnn, tmp_path):
    """Also NaN and infinite inputs, which the host quantises as onnxruntime does, and the
    saved outputs."""
    from rvnpu.compiler.onnx.importer import import_model
    from rvnpu.flows.model import ort_run, ort_session, reference_output
    path, x = cnn
    inputs = np.load(x)
    inputs[1].flat[::5] = np.nan
    inputs[1].flat[1::5] = np.inf
    inputs[1].flat[2::5] = -np.inf
    np.save(tmp_path / "x.npy", inputs)
    result = rvnpu("run", str(path), "--input", str(tmp_path / "x.npy"), "-o",
                   str(tmp_path / "out"), "--save-outputs", str(tmp_path / "y.npy"),
                   "--save-raw", str(tmp_path / "q.npy"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "cycles per layer (mean of 2 inputs)" in out
    assert "output 0:" in out and "output 1:" in out
    assert "all 2 outputs match onnxruntime exactly" in out
    assert "cycles an inference" in out
    assert f"saved the outputs to {tmp_path / 'y.npy'}" in out
    session, model = ort_session(path), import_model(path)
    assert np.load(tmp_path / "y.npy").tobytes() == \
        np.stack([ort_run(session, model, v) for v in inputs]).tobytes()
    np.testing.assert_array_equal(np.load(tmp_path / "q.npy"),
                                  np.stack([reference_output(model, v) for v in inputs]))


def test_run_on_raw_cells_sharing_sb_mac16s(cnn, tmp_path):
    """The same model, bit for bit, on an engine whose cells multiply the raw elements (the
    zero points off below the array) two to an SB_MAC16: the SoC's simulation takes Yosys's
    model of the block."""
    path, x = cnn
    result = rvnpu("run", str(path), "--input", str(x), "-o", str(tmp_path / "out"),
                   "--dataflow", "ws", "--zero-point-sums", "1", "--sb-mac16-pairs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 2 outputs match onnxruntime exactly" in result.stdout


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
