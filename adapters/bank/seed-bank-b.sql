-- seed-bank-b.sql - 银行B 鄂尔多斯分行: customers, risk list and loan
-- ledger.  Every identifier below passes `qiao id check`.  李建国 (the
-- buyer of the demonstration 带押过户) and 刘芳 have their salaries paid
-- through bank B (代发工资), so their incomes are on file; 孙立军 is on the
-- bank's blacklist.

INSERT INTO customer (cust_no, cust_name, id_type, id_no, phone, monthly_income_fen, monthly_debt_fen, opened_date) VALUES
  ('B0477000201', '李建国', 'RESIDENT_ID', '15060219850612003X', '13904771234', 2800000, 0, '2016-03-01'),
  ('B0477000202', '刘芳', 'RESIDENT_ID', '150602198709301527', '13904775678', 1500000, 0, '2016-03-01'),
  ('B0477000203', '马骏', 'RESIDENT_ID', '150603199502140616', '18647701122', 1100000, 350000, '2021-02-02'),
  ('B0477000204', '孙立军', 'RESIDENT_ID', '150602197811230417', '13015003344', 600000, 0, '2018-07-19'),
  ('B0477000205', '王德明', 'RESIDENT_ID', '150602196001010012', '13904779900', 950000, 0, '2010-09-30');

INSERT INTO risk_list (id_no, id_type, name, list_type, reason, listed_date, expires_date) VALUES
  ('150602197811230417', 'RESIDENT_ID', '孙立军', 'BLACKLIST', '恶意逃废银行债务（2023年8月列入）', '2023-08-15', NULL);

INSERT INTO loan_contract (contract_no, cust_no, borrower_name, borrower_id_type, borrower_id_no, product,
  principal_fen, outstanding_fen, annual_rate_ppm, start_date, maturity_date, repay_day, classification,
  overdue_days, collateral_unit_no, collateral_cert_no, mortgage_proof_no, mortgage_rank, status) VALUES
  ('BOB-GRZF-2021-0301007', 'B0477000203', '马骏', 'RESIDENT_ID', '150603199502140616', '个人住房贷款',
   90000000, 79800000, 34000, '2021-03-01', '2051-03-01', 1, '正常', 0,
   '150602001001GB00002F00010002', '蒙(2021)鄂尔多斯市不动产权第0009876号', '蒙(2021)鄂尔多斯市不动产证明第0007788号', 1, 'ACTIVE');
