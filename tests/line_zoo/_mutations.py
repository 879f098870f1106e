# The planted bugs, one line each (read by _make.py). bug(name, base, old line, new line,
# one sentence, arch, style, also=(offsets of other acceptable lines), nth=occurrence).
# ruff: noqa
K, F, C, L, D, S = "karpathy", "functional", "class", "layers", "dlfs2", "split"

# --- min-char-rnn, dict states with hs[-1] = hprev, column vectors
bug("kr_dict_dwhh_current_h", "karpathy_rnn_dict",
    "dWhh += np.dot(dhraw, hs[t-1].T)", "dWhh += np.dot(dhraw, hs[t].T)",
    "dWhh is built from the current state hs[t] instead of the previous hs[t-1]", "rnn", K)
bug("kr_dict_whh_not_transposed", "karpathy_rnn_dict",
    "dhnext = np.dot(Whh.T, dhraw)", "dhnext = np.dot(Whh, dhraw)",
    "dhnext uses Whh instead of Whh.T", "rnn", K)
bug("kr_dict_tanh_reapplied", "karpathy_rnn_dict",
    "dhraw = (1 - hs[t] * hs[t]) * dh", "dhraw = (1 - np.tanh(hs[t]) ** 2) * dh",
    "tanh derivative computed as 1 - tanh(hs[t])^2 although hs[t] is already tanh'ed", "rnn", K)
bug("kr_dict_target_plus_one", "karpathy_rnn_dict",
    "dy[targets[t]] -= 1", "dy[targets[t]] += 1",
    "the softmax gradient adds 1 at the target instead of subtracting it", "rnn", K)
# --- min-char-rnn rewrite with lists, h_states[0] = hprev
bug("kr_list_dwhy_prev_h", "karpathy_rnn_list",
    "dWhy += dy @ h_states[t + 1].T", "dWhy += dy @ h_states[t].T",
    "dWhy uses the previous state h_states[t] instead of the current h_states[t + 1]", "rnn", K)
bug("kr_list_missing_dh_next", "karpathy_rnn_list",
    "dh = Why.T @ dy + dh_next", "dh = Why.T @ dy",
    "dh lacks the dh_next term from later time steps", "rnn", K)
bug("kr_list_dwxh_overwrite", "karpathy_rnn_list",
    "dWxh += dh_raw @ x_onehot[t].T", "dWxh = dh_raw @ x_onehot[t].T",
    "dWxh is assigned instead of accumulated, only step 0 survives", "rnn", K)
bug("kr_list_grad_div_T", "karpathy_rnn_list",
    "dy = probs[t] - target_vec", "dy = (probs[t] - target_vec) / T",
    "the output gradient is divided by T although the loss is summed over time", "rnn", K)
bug("kr_list_double_exp", "karpathy_rnn_list",
    "p = softmax(logits)", "p = softmax(np.exp(logits))",
    "forward: the logits are exponentiated before the softmax, which exponentiates again", "rnn", K)
# --- min-char-rnn LSTM, dict states, [h; x]
bug("kl_dc_next_no_forget", "karpathy_lstm",
    "dc_next = f[t] * dc", "dc_next = dc",
    "dc_next is passed back without the forget-gate factor f[t]", "lstm", K)
bug("kl_dh_next_tail_slice", "karpathy_lstm",
    "dh_next = dz[:H]", "dh_next = dz[-H:]",
    "dh_next takes the tail of dz; with z = [h; x] the hidden part is the head dz[:H]", "lstm", K)
bug("kl_do_sigmoid_reapplied", "karpathy_lstm",
    "do = dh * tanh_c * o[t] * (1 - o[t])", "do = dh * tanh_c * sigmoid(o[t]) * (1 - sigmoid(o[t]))",
    "output-gate derivative applies sigmoid again to o[t], which is already the gate output", "lstm", K)
bug("kl_cell_tanh_derivative_missing", "karpathy_lstm",
    "dc = dc_next + dh * o[t] * (1 - tanh_c ** 2)", "dc = dc_next + dh * o[t]",
    "dc lacks the (1 - tanh(c)^2) factor", "lstm", K)
bug("kl_df_current_c", "karpathy_lstm",
    "df = dc * c[t-1] * f[t] * (1 - f[t])", "df = dc * c[t] * f[t] * (1 - f[t])",
    "the forget-gate gradient uses the current cell c[t] instead of the previous c[t-1]", "lstm", K)
bug("kl_dwc_wrong_gate", "karpathy_lstm",
    "dWc += np.dot(dcbar, zs[t].T)", "dWc += np.dot(di, zs[t].T)",
    "dWc accumulates the input-gate gradient di instead of the candidate's dcbar", "lstm", K)
# --- min-char-rnn GRU (h = z * hc + (1 - z) * h_prev)
bug("kg_direct_path_missing", "karpathy_gru",
    "dhnext = dh * (1 - zs[t]) + du[:n_h] * rs[t] + dv[:n_h]", "dhnext = du[:n_h] * rs[t] + dv[:n_h]",
    "dhnext drops the direct path dh * (1 - z) from h_prev to h_new", "gru", K)
bug("kg_r_sigmoid_reapplied", "karpathy_gru",
    "dr = du[:n_h] * hs[t-1] * rs[t] * (1 - rs[t])", "dr = du[:n_h] * hs[t-1] * sigmoid(rs[t]) * (1 - sigmoid(rs[t]))",
    "reset-gate derivative applies sigmoid again to rs[t], already the gate output", "gru", K)
bug("kg_dz_sign", "karpathy_gru",
    "dz = dh * (hcs[t] - hs[t-1]) * zs[t] * (1 - zs[t])", "dz = dh * (hs[t-1] - hcs[t]) * zs[t] * (1 - zs[t])",
    "update-gate gradient uses (h_prev - hc) instead of (hc - h_prev)", "gru", K)
bug("kg_candidate_tanh_missing", "karpathy_gru",
    "dhc = dh * zs[t] * (1 - hcs[t] ** 2)", "dhc = dh * zs[t]",
    "the candidate's gradient lacks the tanh derivative (1 - hc^2)", "gru", K)
# --- functional RNN, 1-D, hs[0] = h0
bug("fl_dwhh_next_h", "functional_rnn_list",
    "dW_hh += np.outer(da, hs[t])", "dW_hh += np.outer(da, hs[t + 1])",
    "dW_hh uses the current state hs[t + 1] instead of the previous hs[t]", "rnn", F)
bug("fl_tanh_derivative_missing", "functional_rnn_list",
    "da = dh * (1 - hs[t + 1] ** 2)", "da = dh",
    "no tanh derivative: da = dh", "rnn", F)
bug("fl_dh_next_from_dh", "functional_rnn_list",
    "dh_next = W_hh.T @ da", "dh_next = W_hh.T @ dh",
    "dh_next is computed from dh, skipping the tanh derivative", "rnn", F)

# --- functional RNN, row vectors, hs[t] = state after step t, h0 apart
bug("fr_hprev_wraparound", "functional_rnn_rows",
    "h_prev = hs[t - 1] if t > 0 else h0", "h_prev = hs[t - 1]",
    "backward: at t = 0 the previous state hs[t - 1] wraps to the last state instead of h0", "rnn", F, nth=2)
bug("fr_whh_transposed_twice", "functional_rnn_rows",
    "dh_next = dpre @ Whh", "dh_next = dpre @ Whh.T",
    "row layout: dh_next = dpre @ Whh.T (transposed) instead of dpre @ Whh", "rnn", F)
bug("fr_tanh_of_preactivation", "functional_rnn_rows",
    "dpre = dh * (1 - np.tanh(pre[t]) ** 2)", "dpre = dh * (1 - pre[t] ** 2)",
    "the tanh derivative uses the pre-activation pre[t] instead of tanh(pre[t])", "rnn", F)
bug("fr_dh_next_sign", "functional_rnn_rows",
    "dh = dscores @ Why + dh_next", "dh = dscores @ Why - dh_next",
    "dh_next is subtracted instead of added", "rnn", F)
# --- functional LSTM, stacked W (4H, X+H) on [x; h], gates i, f, g, o
bug("fs_gate_blocks_swapped", "functional_lstm_stacked",
    "da = np.concatenate((d_i, d_f, d_g, d_o))", "da = np.concatenate((d_f, d_i, d_g, d_o))",
    "the stacked gate gradient puts the forget block where the input block belongs", "lstm", F)
bug("fs_dh_next_head", "functional_lstm_stacked",
    "dh_next = dxh[X:]", "dh_next = dxh[:H]",
    "dh_next takes the head of dxh, which is the input part for [x; h]", "lstm", F)
bug("fs_g_derivative_unsquared", "functional_lstm_stacked",
    "d_g = dc * i_g * (1.0 - g_g ** 2)", "d_g = dc * i_g * (1.0 - g_g)",
    "candidate derivative is 1 - g instead of 1 - g^2", "lstm", F)
bug("fs_missing_dh_next", "functional_lstm_stacked",
    "dh = Wy.T @ dy + dh_next", "dh = Wy.T @ dy",
    "dh lacks dh_next from the following step", "lstm", F)
bug("fs_do_uses_dc", "functional_lstm_stacked",
    "d_o = dh * np.tanh(c_t) * o_g * (1.0 - o_g)", "d_o = dc * np.tanh(c_t) * o_g * (1.0 - o_g)",
    "the output-gate gradient starts from dc instead of dh", "lstm", F)

# --- split forward/backward RNN
bug("sr_delta_next_missing", "split_rnn",
    "delta = (np.dot(Why.T, do) + delta_next) * (1.0 - h[t + 1] ** 2)",
    "delta = np.dot(Why.T, do) * (1.0 - h[t + 1] ** 2)",
    "delta lacks delta_next from the following step", "rnn", S)
bug("sr_dwhh_current_h", "split_rnn",
    'g["Whh"] += np.outer(delta, h[t])', 'g["Whh"] += np.outer(delta, h[t + 1])',
    "dWhh uses the current state h[t + 1] instead of h[t]", "rnn", S)
bug("sr_dby_sign", "split_rnn",
    'g["by"] += do', 'g["by"] -= do',
    "dby subtracts the output gradient instead of adding it", "rnn", S)

# --- class RNN (dict states, column vectors)
bug("cr_dwhy_prev_h", "class_rnn",
    "dWhy += dout @ self.hs[t].T", "dWhy += dout @ self.hs[t - 1].T",
    "dWhy uses the previous state hs[t - 1] instead of hs[t]", "rnn", C)
bug("cr_dbh_uses_dh", "class_rnn",
    "dbh += dh_raw", "dbh += dh",
    "dbh accumulates dh instead of dh_raw (no tanh derivative)", "rnn", C)
# --- class LSTM (per-gate dict, 1-D, h[0] = h0)
bug("cl_df_current_c", "class_lstm",
    'd["f"] = dc * self.c[t] * self.f[t] * (1.0 - self.f[t])',
    'd["f"] = dc * self.c[t + 1] * self.f[t] * (1.0 - self.f[t])',
    "forget-gate gradient uses the current cell c[t + 1] instead of the previous c[t]", "lstm", C)
bug("cl_dc_missing_o", "class_lstm",
    "dc = dc_next + dh * self.o[t] * (1.0 - tanh_c ** 2)", "dc = dc_next + dh * (1.0 - tanh_c ** 2)",
    "dc lacks the output-gate factor o", "lstm", C)
bug("cl_bias_overwrite", "class_lstm",
    'grads["b" + k] += d[k]', 'grads["b" + k] = d[k]',
    "gate bias gradients are assigned instead of accumulated", "lstm", C)
bug("cl_i_sigmoid_reapplied", "class_lstm",
    'd["i"] = dc * self.g[t] * self.i[t] * (1.0 - self.i[t])',
    'd["i"] = dc * self.g[t] * sigmoid(self.i[t]) * (1.0 - sigmoid(self.i[t]))',
    "input-gate derivative applies sigmoid again to i, already the gate output", "lstm", C)
bug("cl_tanh_c_prev", "class_lstm",
    "tanh_c = np.tanh(self.c[t + 1])", "tanh_c = np.tanh(self.c[t])",
    "tanh of the cell uses the previous cell c[t] instead of the current c[t + 1]", "lstm", C)

# --- class GRU (PyTorch-style interpolation)
bug("cg_update_gate_flipped", "class_gru",
    "dn = dh_new * (1 - z)", "dn = dh_new * z",
    "candidate gradient uses z instead of (1 - z)", "gru", C)
bug("cg_direct_path_missing", "class_gru",
    "dh = dh_new * z", "dh = np.zeros_like(dh_new)",
    "the direct path dh_new * z to the previous state is dropped", "gru", C)
bug("cg_dr_uses_r", "class_gru",
    "dr = d_rh * h", "dr = d_rh * r",
    "reset-gate gradient multiplies by r instead of h", "gru", C)
bug("cg_dz_sigmoid_reapplied", "class_gru",
    "dz_pre = dz * z * (1 - z)", "dz_pre = dz * sigmoid(z) * (1 - sigmoid(z))",
    "update-gate derivative applies sigmoid again to z, already the gate output", "gru", C)
bug("cg_dh_wrong_slice", "class_gru",
    "dh += dhx[:self.H]", "dh += dhx[-self.H:]",
    "the hidden part of dhx is its head [:H] for [h; x], the tail is taken", "gru", C)

# --- course layer API, RNN
bug("lr_dwh_next_h", "layers_rnn",
    "dWh = np.dot(prev_h.T, dtanh)", "dWh = np.dot(next_h.T, dtanh)",
    "rnn_step_backward: dWh uses next_h instead of prev_h", "rnn", L)
bug("lr_dnext_not_added", "layers_rnn",
    "dcurrent_h = dh[:, t, :] + dprev_h", "dcurrent_h = dh[:, t, :]",
    "rnn_backward: the gradient from step t+1 is not added to the upstream dh[:, t, :]", "rnn", L)
bug("lr_wh_not_transposed", "layers_rnn",
    "dprev_h = np.dot(dtanh, Wh.T)", "dprev_h = np.dot(dtanh, Wh)",
    "rnn_step_backward: dprev_h uses Wh instead of Wh.T", "rnn", L)
bug("lr_db_mean", "layers_rnn",
    "db = np.sum(dtanh, axis=0)", "db = np.mean(dtanh, axis=0)",
    "rnn_step_backward: db averages over the batch instead of summing", "rnn", L)
# --- course layer API, LSTM (gates i, f, o, g)
bug("ll_dprev_c_no_forget", "layers_lstm",
    "dprev_c = dnext_c * f", "dprev_c = dnext_c",
    "lstm_step_backward: dprev_c lacks the forget factor f", "lstm", L)
bug("ll_gate_blocks_swapped", "layers_lstm",
    "da = np.hstack((dai, daf, dao, dag))", "da = np.hstack((dai, daf, dag, dao))",
    "lstm_step_backward: the g and o blocks of da are swapped (forward order is i, f, o, g)", "lstm", L)
bug("ll_dc_not_carried", "layers_lstm",
    "dh[:, t, :] + dprev_h, dprev_c, cache[t])", "dh[:, t, :] + dprev_h, np.zeros((N, H)), cache[t])",
    "lstm_backward: the cell gradient from step t+1 is replaced by zeros", "lstm", L, also=(-1,))
bug("ll_do_without_tanh", "layers_lstm",
    "dao = dnext_h * tanh_next_c * o * (1 - o)", "dao = dnext_h * next_c * o * (1 - o)",
    "lstm_step_backward: the output-gate gradient uses next_c instead of tanh(next_c)", "lstm", L)

# --- Deep Learning from Scratch 2 RNN / TimeRNN
bug("dr_dh_not_added", "dlfs2_rnn",
    "dx, dh = layer.backward(dhs[:, t, :] + dh)", "dx, dh = layer.backward(dhs[:, t, :])",
    "TimeRNN.backward: dh from step t+1 is not added to dhs[:, t, :]", "rnn", D)
bug("dr_grads_overwrite", "dlfs2_rnn",
    "grads[k] += g", "grads[k] = g",
    "TimeRNN.backward: per-step grads are assigned instead of summed", "rnn", D)
bug("dr_tanh_prev_h", "dlfs2_rnn",
    "da = dh_next * (1 - h_next * h_next)", "da = dh_next * (1 - h_prev * h_prev)",
    "RNN.backward: the tanh derivative uses h_prev instead of h_next", "rnn", D)

# --- Deep Learning from Scratch 2 LSTM / TimeLSTM (blocks f, g, i, o)
bug("dl_dc_prev_no_forget", "dlfs2_lstm",
    "dc_prev = ds * f", "dc_prev = ds",
    "LSTM.backward: dc_prev lacks the forget factor f", "lstm", D)
bug("dl_blocks_swapped", "dlfs2_lstm",
    "dA = np.hstack((dA_f, dA_g, dA_i, dA_o))", "dA = np.hstack((dA_f, dA_i, dA_g, dA_o))",
    "LSTM.backward: the g and i blocks of dA are swapped (forward order is f, g, i, o)", "lstm", D)
bug("dl_do_tanh_derivative", "dlfs2_lstm",
    "dA_o = dh_next * tc * o * (1 - o)", "dA_o = dh_next * tc * (1 - o ** 2)",
    "LSTM.backward: the output gate uses the tanh derivative 1 - o^2 instead of o(1 - o)", "lstm", D)
