"""`python -m jaxgan.bench --profile` (jaxgan/training/xla_profile.py): the join of trace events
to the compiled module's instructions and their JAX sources, on a hand-written module and on a
real step."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.training import benchmark, xla_profile

HLO = """HloModule jit_step, entry_computation_layout={(f32[8]{0})->f32[8]{0}}

%fused_computation (param_0: f32[8]) -> f32[8] {
  %param_0 = f32[8]{0} parameter(0)
  ROOT %tanh.1 = f32[8]{0} tanh(%param_0), metadata={op_name="jit(step)/jvp(Critic)/Conv1/tanh"}
}

%fused_computation.1 (param_0.1: f32[8], param_1: f32[8]) -> f32[] {
  %param_0.1 = f32[8]{0} parameter(0)
  %param_1 = f32[8]{0} parameter(1)
  %dot.2 = f32[] dot(%param_0.1, %param_1), lhs_contracting_dims={0}, rhs_contracting_dims={0}, metadata={op_name="jit(step)/jvp(Critic)/Block1Conv2/dot_general"}
  ROOT %negate.1 = f32[] negate(%dot.2), metadata={op_name="jit(step)/jvp(Critic)/reduce_sum"}
}

ENTRY %main.9 (x.1: f32[8]) -> f32[8] {
  %x.1 = f32[8]{0} parameter(0), metadata={op_name="x"}
  %tanh_fusion = f32[8]{0} fusion(%x.1), kind=kLoop, calls=%fused_computation
  %dot_fusion = f32[] fusion(%x.1, %x.1), kind=kOutput, calls=%fused_computation.1, metadata={op_name="jit(step)/jvp(Critic)/reduce_sum"}
  ROOT %convolution.3 = f32[8]{0} convolution(%tanh_fusion, %x.1), window={size=1}, metadata={op_name="jit(step)/transpose(jvp(transpose(jvp(Critic))))/Conv2/conv_general_dilated"}
}
"""


def test_each_instruction_gets_its_kind_and_source_a_fusion_its_computations():
    sources = xla_profile.instruction_sources(HLO)
    assert sources["tanh_fusion"] == ("fusion", "jit(step)/jvp(Critic)/Conv1/tanh")
    assert sources["convolution.3"] == (
        "convolution",
        "jit(step)/transpose(jvp(transpose(jvp(Critic))))/Conv2/conv_general_dilated",
    )
    assert sources["tanh.1"] == ("tanh", "jit(step)/jvp(Critic)/Conv1/tanh")
    assert sources["x.1"] == ("parameter", "x")
    # Named by the dot it holds, not by the reduction whose op_name it carries.
    assert sources["dot_fusion"] == ("fusion:dot", "jit(step)/jvp(Critic)/Block1Conv2/dot_general")


def test_pass_and_scope_of_an_op_name():
    name = "jit(guarded)/transpose(jvp(transpose(jvp(Critic))))/Conv2/dot_general"
    assert (xla_profile.pass_of(name), xla_profile.scope_of(name)) == (
        "gradient of gradient",
        "Critic/Conv2",
    )
    name = "jit(guarded)/jvp(Generator)/Up1/transpose()/conv_general_dilated"
    assert (xla_profile.pass_of(name), xla_profile.scope_of(name)) == ("gradient", "Generator/Up1")
    assert (xla_profile.pass_of("jit(step)/add"), xla_profile.scope_of("jit(step)/add")) == (
        "forward",
        "(outside the networks)",
    )


def test_a_real_steps_events_are_its_instructions_and_add_up_to_its_time():
    def step(state, x):
        def loss(w):
            y = jax.lax.conv_general_dilated(
                x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return jnp.mean(jnp.tanh(y) ** 2)

        return {"w": state["w"] - 0.1 * jax.grad(loss)(state["w"])}, loss(state["w"])

    rng = np.random.default_rng(0)
    state = {"w": jnp.asarray(rng.normal(size=(3, 3, 8, 8)), jnp.float32)}
    x = jnp.asarray(rng.normal(size=(16, 32, 32, 8)), jnp.float32)
    bench_step = benchmark.BenchStep(jax.jit(step, donate_argnums=0), state, (x,), 16, ())
    bench_step.warm_up()
    compiled = bench_step.fn.lower(bench_step.state, x).compile().as_text()
    table = xla_profile.profile(bench_step, 3)

    instructions = xla_profile.instruction_sources(compiled)
    assert table["rows"] and all(row["instruction"] in instructions for row in table["rows"])
    assert any(
        row["kind"].endswith("convolution") and row["pass"] == "gradient" for row in table["rows"]
    )
    cpu_ms = sum(row["ms"] for row in table["rows"])
    # The instructions' CPU time: a good part of the step's wall time, at most every core's worth.
    assert 0.05 * table["wall_ms"] < cpu_ms <= table["cores"] * table["wall_ms"]
    assert table["cores"] <= os.cpu_count()
    assert table["rows"] == sorted(table["rows"], key=lambda row: -row["ms"])
    text = xla_profile.report(table, top=3)
    assert f"{cpu_ms / table['wall_ms']:.2f} of the {table['cores']} cores busy" in text
    lines = text.splitlines()
    first_row = lines[
        lines.index(next(line for line in lines if line.lstrip().startswith("ms"))) + 1
    ]
    assert first_row.split()[0] == f"{table['rows'][0]['ms']:.2f}"
    assert "by pass:" in text and "by scope:" in text and "by kind:" in text
